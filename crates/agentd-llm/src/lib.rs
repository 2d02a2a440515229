//! agentd's LLM providers: thin adapters over HTTP for OpenAI-compatible chat completions
//! (OpenAI, Ollama, vLLM...) and Anthropic Messages.
//!
//! [`Llm`] is one configured provider, made from [`LlmSettings`]; [`Llm::chat`] and
//! [`Llm::chat_streaming`] send a provider-neutral [`ChatRequest`] (a system prompt, [`Message`]s
//! of [`Content`], [`ToolSpec`]s, an optional [`OutputSchema`]) and return a [`ChatResponse`]
//! (text, [`ToolCall`]s, [`TokenUsage`] and its cost from the [`Price`] table). Transient
//! failures are retried with backoff or as the server's `Retry-After` says; every failure is an
//! [`LlmError`]. Both clients are `agentd_egress` operator clients, and read `Retry-After`, back
//! off and describe transport failures the way every outbound connection does.
//!
//! [`SpeechClient`] (made from [`SpeechSettings`]) transcribes audio and speaks text on an
//! OpenAI-compatible speech server; its failures are [`SpeechError`]s.
//!
//! Invariants: only this crate knows the providers' wire formats; the API key is never in an
//! error, a log line or a `Debug` output; an answer is never larger than [`MAX_RESPONSE_BYTES`].
#![deny(missing_docs)]

mod anthropic;
mod chat;
mod client;
mod computer;
mod error;
mod openai;
mod settings;
mod speech;

pub use chat::{ChatRequest, ChatResponse, Content, Message, OutputSchema, TokenUsage, ToolCall, ToolChoice, ToolSpec};
pub use client::{Llm, MAX_RESPONSE_BYTES};
pub use computer::{
    Button, CallResult, ComputerAction, ComputerCall, ComputerConversation, ComputerSetup, ComputerTurn, Image, Point,
    ProviderSafetyCheck, Screen, TurnInput,
};
pub use error::LlmError;
pub use settings::{LlmSettings, Price, ProviderKind};
pub use speech::{
    AudioFormat, MAX_AUDIO_BYTES, MAX_SPEECH_BYTES, MAX_SPEECH_INPUT_CHARS, MAX_SPEECH_REQUESTS, Speech, SpeechClient,
    SpeechError, SpeechSettings,
};
