//! agentd's agents. Principal types: [`BrowserAgent`] (mode `browser`: observe the page, ask
//! the LLM with the action tools, act, report every step as events, with a person in the
//! loop for input and permissions) and [`Browsers`] (the node's browser pool, started on
//! first use or in the background at server start).
//!
//! Agents see the session only through `agentd_engine::SessionContext`, the browser through
//! `agentd_browser`, the model through `agentd_llm`; they never touch the store.
#![deny(missing_docs)]

mod answer;
mod browser_agent;
mod browsers;
mod computer_agent;
mod loop_guard;
mod prompt;
mod reader;
mod research_agent;
mod run;
mod search;
mod secrets;
mod tools;

pub use browser_agent::{BrowserAgent, BrowserAgentSettings, NO_PROVIDER};
pub use browsers::Browsers;
pub use reader::WebReader;
pub use research_agent::{PageReader, ReadPage, ResearchAgent, ResearchSettings};
pub use search::{DEFAULT_SEARCH_PAGE, SearchHit, SearchProvider, SearchSettings};
