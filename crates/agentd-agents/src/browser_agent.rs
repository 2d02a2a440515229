//! The browser agent (mode `browser`) and its DOM driver: observe the page, ask the LLM with
//! the action tools, act, and report each step as a `thought` event and one `action` event per
//! action, until the model calls `done`, the session runs out of actions, fails too often,
//! loops, or ends. Sessions with `driver: computer_use` go to [`crate::computer_agent`].

use std::sync::Arc;
use std::time::Instant;

use agentd_browser::{SessionOptions, UrlPolicy, Viewport};
use agentd_domain::{Driver, EventKind, FieldError, SessionSpec};
use agentd_engine::{Agent, AgentError, Completion, SessionContext};
use agentd_llm::{ChatRequest, Content, Llm, Message, ToolCall, ToolChoice, ToolSpec};
use async_trait::async_trait;
use serde_json::json;

use crate::answer;
use crate::browsers::Browsers;
use crate::computer_agent::ComputerRun;
use crate::prompt::{self, Reasoning, StepInput};
use crate::run::{BrowserRun, browser_failed, ms};
use crate::secrets::Vault;
use crate::tools::{self, Step};

/// Why a browser session cannot be created without an LLM, naming the settings to set.
pub const NO_PROVIDER: &str = "no LLM provider is configured: set AGENTD_LLM_BASE_URL and AGENTD_LLM_MODEL \
(plus AGENTD_LLM_API_KEY if the endpoint needs one; OPENAI_BASE_URL / OPENAI_API_KEY work too), \
or AGENTD_LLM_PROVIDER=anthropic with ANTHROPIC_API_KEY and AGENTD_LLM_MODEL";

/// Refuses sessions at create time when no LLM is configured, naming the settings to set.
pub(crate) fn require_llm(llm: &Option<Llm>) -> Result<(), FieldError> {
    match llm {
        Some(_) => Ok(()),
        None => Err(FieldError::new("model", NO_PROVIDER)),
    }
}

/// Tunables of the browser agent.
#[derive(Debug, Clone)]
pub struct BrowserAgentSettings {
    /// Failed actions in a row that end the session.
    pub max_failures: u32,
    /// Token budget of the page state in each prompt.
    pub page_tokens: usize,
    /// Earlier steps shown to the model (older ones are counted, not shown).
    pub history_steps: usize,
    /// Token budget of extracted page content handed to the model.
    pub extract_tokens: usize,
    /// Identical (page, action) repeats that earn a nudge, and that end the session.
    pub loop_nudge_at: usize,
    /// See `loop_nudge_at`.
    pub loop_stop_at: usize,
}

impl Default for BrowserAgentSettings {
    fn default() -> Self {
        Self { max_failures: 3, page_tokens: 900, history_steps: 12, extract_tokens: 1_500, loop_nudge_at: 3, loop_stop_at: 5 }
    }
}

/// The browser agent.
pub struct BrowserAgent {
    browsers: Arc<Browsers>,
    llm: Option<Llm>,
    settings: BrowserAgentSettings,
}

impl BrowserAgent {
    /// An agent driving `browsers` with `llm` (None: no provider is configured, and
    /// sessions are refused at create time with [`NO_PROVIDER`]).
    pub fn new(browsers: Arc<Browsers>, llm: Option<Llm>, settings: BrowserAgentSettings) -> Self {
        Self { browsers, llm, settings }
    }
}

#[async_trait]
impl Agent for BrowserAgent {
    fn admit(&self, _spec: &SessionSpec) -> Result<(), FieldError> {
        require_llm(&self.llm)
    }

    async fn run(&self, ctx: SessionContext) -> Result<Completion, AgentError> {
        let llm = self.llm.clone().ok_or_else(|| AgentError::failed("no_llm", NO_PROVIDER))?;
        let spec = ctx.spec().clone();
        let secrets = ctx.secrets().ok_or_else(|| {
            AgentError::failed(
                "secrets_lost",
                "the session's sensitive_data was kept in memory only and the server restarted since it was created; create the session again",
            )
        })?;
        let pool = self.browsers.pool().await.map_err(|e| AgentError::failed("browser_unavailable", e.to_string()))?;
        let options = SessionOptions {
            viewport: Viewport { width: spec.display_width, height: spec.display_height },
            download_dir: None,
            urls: UrlPolicy { allowed_domains: spec.allowed_domains.clone(), blocked_domains: Vec::new() },
        };
        let browser = pool.lease(options).await.map_err(|e| AgentError::failed("browser_unavailable", e.to_string()))?;
        let run = BrowserRun::new(ctx, browser, Vault::new(&secrets, &spec.allowed_domains), self.settings.clone());
        let redact = |vault: &Vault, done: &mut Completion| vault.redact_json(&mut done.response);
        match spec.driver {
            Driver::Dom => {
                let mut dom = DomRun::new(run, llm);
                let result = dom.drive().await;
                dom.run.finish(result, redact).await
            }
            Driver::ComputerUse => {
                let mut computer = ComputerRun::new(run, llm);
                let result = computer.drive().await;
                computer.run.finish(result, redact).await
            }
        }
    }
}

/// The DOM driver: the page's elements as text, actions by element index, one stateless
/// request per step.
struct DomRun {
    run: BrowserRun,
    llm: Llm,
    history: Vec<String>,
    memory: String,
    notes: Vec<String>,
    /// The project's tools the agent version allows.
    user_tools: Vec<ToolSpec>,
}

impl DomRun {
    fn new(run: BrowserRun, llm: Llm) -> Self {
        Self { run, llm, history: Vec::new(), memory: String::new(), notes: Vec::new(), user_tools: Vec::new() }
    }

    async fn drive(&mut self) -> Result<Completion, AgentError> {
        self.user_tools = self
            .run
            .ctx
            .user_tools()
            .await
            .into_iter()
            .map(|t| ToolSpec { name: t.name, description: t.description, parameters: t.parameters })
            .collect();
        if let Some(note) = self.run.open_start_page().await? {
            self.notes.push(note);
        }
        loop {
            self.run.ctx.checkpoint().await?;
            self.run.step += 1;
            if let Some(done) = self.one_step().await? {
                return Ok(done);
            }
        }
    }

    /// Observe, ask, act. `Some` when the task is done.
    async fn one_step(&mut self) -> Result<Option<Completion>, AgentError> {
        if let Some(note) = self.run.recover().await? {
            self.notes.push(note);
        }
        let news = self.run.page_news().await?;
        self.notes.extend(news);
        let observed = Instant::now();
        let state = self.run.browser.observe().await.map_err(browser_failed)?;
        let observe_ms = ms(observed.elapsed());
        let page = state.render_within(self.run.settings.page_tokens);
        let request = self.request(&page);
        self.notes.clear();
        let asked = Instant::now();
        let reply = self.llm.chat(&request).await.map_err(|e| AgentError::failed("llm_error", format!("the LLM call failed: {e}")))?;
        let llm_ms = ms(asked.elapsed());
        self.run.account(reply.usage.input_tokens, reply.usage.output_tokens, reply.cost_usd);
        let reasoning = Reasoning::parse(&reply.text);
        if !reasoning.memory.is_empty() {
            self.memory = reasoning.memory.clone();
        }
        self.run
            .emit(
                EventKind::Thought,
                json!({
                    "step": self.run.step,
                    "url": state.url,
                    "thought": reasoning.thought,
                    "memory": reasoning.memory,
                    "next_goal": reasoning.next_goal,
                    "observe_ms": observe_ms,
                    "llm_ms": llm_ms,
                    "input_tokens": reply.usage.input_tokens,
                    "output_tokens": reply.usage.output_tokens,
                }),
            )
            .await?;
        if reply.tool_calls.is_empty() {
            self.failed_step("no tool was called: call a tool, or done when the goal is reached".into())?;
            return Ok(None);
        }
        let url_before = state.url.clone();
        let total = reply.tool_calls.len();
        for (i, call) in reply.tool_calls.iter().enumerate() {
            if self.user_tools.iter().any(|t| t.name == call.name) {
                self.call_user_tool(call).await?;
                continue;
            }
            let step = match tools::parse(call) {
                Ok(step) => step,
                Err(error) => {
                    self.failed_step(error)?;
                    break;
                }
            };
            let ends_turn = step.ends_turn();
            match step {
                Step::Done { response, kind } => match answer::accept(response, kind, self.run.spec().output_schema.as_ref()) {
                    Ok(done) => return Ok(Some(done)),
                    Err(error) => {
                        self.failed_step(format!("done was not accepted: {error}"))?;
                    }
                },
                Step::Browser { action, flagged } => {
                    if let Some(code) = self.run.confirm_if_sensitive(&action, flagged).await? {
                        self.record(&format!("safety check {code}"), "confirmed by the user");
                    }
                    let acted = self.run.act(&action, &page).await?;
                    self.notes.extend(acted.nudge);
                    let failed = match acted.result {
                        Ok(description) => {
                            self.record(action.name(), &description);
                            false
                        }
                        Err(error) => {
                            self.failed_step(error)?;
                            true
                        }
                    };
                    let navigated = self.page_moved(&url_before).await;
                    if (failed || navigated) && i + 1 < total {
                        let why = if failed { "an action failed" } else { "the page changed" };
                        self.history.push(format!("  ({} more actions of this step skipped: {why})", total - i - 1));
                        break;
                    }
                }
                Step::Extract => self.extract().await?,
                Step::RequestInput { field_name, reason } => {
                    let answer = self.run.ctx.request_input(&field_name, &reason).await?;
                    self.record(&format!("asked the user for {field_name}"), "answered");
                    self.notes.push(format!("The user's answer for {field_name}: {answer}"));
                }
                Step::RequestPermission { reason } => {
                    let granted = self.run.ctx.request_permission(&reason).await?;
                    let verdict = if granted { "granted" } else { "denied" };
                    self.record(&format!("asked permission: {reason}"), verdict);
                    if !granted {
                        self.notes.push(format!(
                            "The user DENIED permission for: {reason}. Do not do it; find another way, or call done explaining why the goal cannot be reached."
                        ));
                    }
                }
            }
            if ends_turn {
                break;
            }
        }
        Ok(None)
    }

    /// Runs one of the project's tools; its (masked) result is a note for the next step.
    async fn call_user_tool(&mut self, call: &ToolCall) -> Result<(), AgentError> {
        let started = Instant::now();
        let outcome = self.run.ctx.call_user_tool(&call.name, &call.arguments).await.unwrap_or_else(|| Err(format!("there is no tool `{}`", call.name)));
        let summary = outcome.as_ref().map(|text| format!("called {} ({} characters back)", call.name, text.chars().count())).map_err(Clone::clone);
        self.run.report_action(&call.name, None, &summary, started.elapsed()).await?;
        match outcome {
            Ok(text) => {
                let cut: String = text.chars().take(self.run.settings.extract_tokens * 4).collect();
                self.notes.push(format!("Result of {}:\n{cut}", call.name));
                self.record(&call.name, "called");
            }
            Err(error) => self.failed_step(format!("{} failed: {error}", call.name))?,
        }
        Ok(())
    }

    fn request(&self, page: &str) -> ChatRequest {
        let shown_from = self.history.len().saturating_sub(self.run.settings.history_steps);
        let message = prompt::step_message(&StepInput {
            spec: self.run.spec(),
            actions_left: self.run.actions_left(),
            history: &self.history[shown_from..],
            earlier_steps: shown_from,
            memory: &self.memory,
            notes: &self.notes,
            secrets: self.run.vault.prompt_line(),
            page,
        });
        // The page may show a typed secret; the model never sees a value.
        let message = self.run.vault.redact(&message);
        ChatRequest {
            model: self.run.spec().model.clone(),
            system: Some(prompt::system(self.run.spec())),
            messages: vec![Message::User(vec![Content::Text(message)])],
            tools: tools::specs().into_iter().chain(self.user_tools.iter().cloned()).collect(),
            tool_choice: ToolChoice::Required,
            ..ChatRequest::default()
        }
    }

    async fn extract(&mut self) -> Result<(), AgentError> {
        let started = Instant::now();
        let result = agentd_browser::extract_markdown(self.run.browser.page()).await.map_err(|e| e.to_string());
        let summary = result.as_ref().map(|(_, outcome)| outcome.description.clone()).map_err(Clone::clone);
        self.run.report_action("extract", None, &summary, started.elapsed()).await?;
        match result {
            Ok((extracted, outcome)) => {
                let content = extracted.markdown;
                let cut: String = content.chars().take(self.run.settings.extract_tokens * 4).collect();
                let more = if cut.len() < content.len() { "\n(content cut here)" } else { "" };
                self.notes.push(format!("Extracted page content:\n{cut}{more}"));
                self.record("extract", &outcome.description);
            }
            Err(error) => self.failed_step(format!("extract failed: {error}"))?,
        }
        Ok(())
    }

    /// True when the active page is no longer at `before` (the rest of a chained reply was
    /// meant for the old page).
    async fn page_moved(&self, before: &str) -> bool {
        match self.run.browser.page().url().await {
            Ok(Some(now)) => now != before,
            _ => true,
        }
    }

    /// A history line for what succeeded (failures go through [`DomRun::failed_step`]).
    fn record(&mut self, what: &str, result: &str) {
        self.history.push(format!("{}. {what}: {result}", self.run.step));
    }

    /// Counts a failure and tells the model; too many in a row end the session.
    fn failed_step(&mut self, error: String) -> Result<(), AgentError> {
        self.run.failed(&error)?;
        self.history.push(format!("{}. FAILED: {error}", self.run.step));
        Ok(())
    }
}
