//! agentd-embed's integration tests: the real model (from the files `scripts/install-model.sh`
//! installs) and the OpenAI-compatible client against a fake endpoint on loopback.

#[cfg(feature = "local-model")]
mod local_model;
mod openai;
