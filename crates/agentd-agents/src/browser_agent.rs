//! The browser agent (mode `browser`): observe the page, ask the LLM with the action tools,
//! act, and report each step as a `thought` event and one `action` event per action, until
//! the model calls `done`, the session runs out of actions, fails too often, loops, or ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentd_browser::{Action, SessionBrowser, SessionOptions, UrlPolicy, Viewport};
use agentd_domain::{EventKind, FieldError, SessionSpec, Usage};
use agentd_engine::{Agent, AgentError, Completion, SessionContext};
use agentd_llm::{ChatRequest, ChatResponse, Content, Llm, Message, ToolChoice};
use async_trait::async_trait;
use serde_json::{Value, json};

use crate::answer;
use crate::browsers::Browsers;
use crate::loop_guard::{LoopGuard, Verdict};
use crate::prompt::{self, Reasoning, StepInput};
use crate::secrets::Vault;
use crate::tools::{self, Step};

/// Why a browser session cannot be created without an LLM, naming the settings to set.
pub const NO_PROVIDER: &str = "no LLM provider is configured: set AGENTD_LLM_BASE_URL and AGENTD_LLM_MODEL \
(plus AGENTD_LLM_API_KEY if the endpoint needs one; OPENAI_BASE_URL / OPENAI_API_KEY work too), \
or AGENTD_LLM_PROVIDER=anthropic with ANTHROPIC_API_KEY and AGENTD_LLM_MODEL";

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
        Self { max_failures: 3, page_tokens: 1_200, history_steps: 12, extract_tokens: 1_500, loop_nudge_at: 3, loop_stop_at: 5 }
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
        match self.llm {
            Some(_) => Ok(()),
            None => Err(FieldError::new("model", NO_PROVIDER)),
        }
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
        let mut run = Run::new(ctx, llm, browser, self.settings.clone(), Vault::new(&secrets));
        let result = run.drive().await.map(|mut done| {
            run.vault.redact_json(&mut done.response);
            done
        });
        let result = result.map_err(|error| match error {
            AgentError::Failed { message, reason } => AgentError::Failed { message: run.vault.redact(&message), reason },
            AgentError::Stopped { reason } => AgentError::Stopped { reason: run.vault.redact(&reason) },
            other => other,
        });
        if let Err(error) = run.browser.close().await {
            tracing::debug!(%error, "closing a session's browser context failed");
        }
        result
    }
}

/// One session's run: its browser, its history and its counters.
struct Run {
    ctx: SessionContext,
    llm: Llm,
    browser: SessionBrowser,
    settings: BrowserAgentSettings,
    step: u32,
    actions_done: u32,
    failures: u32,
    history: Vec<String>,
    memory: String,
    notes: Vec<String>,
    guard: LoopGuard,
    vault: Vault,
}

impl Run {
    fn new(ctx: SessionContext, llm: Llm, browser: SessionBrowser, settings: BrowserAgentSettings, vault: Vault) -> Self {
        let guard = LoopGuard::new(settings.loop_nudge_at, settings.loop_stop_at);
        Self {
            ctx,
            llm,
            browser,
            settings,
            step: 0,
            actions_done: 0,
            failures: 0,
            history: Vec::new(),
            memory: String::new(),
            notes: Vec::new(),
            guard,
            vault,
        }
    }

    /// Records an event with every secret value replaced by its placeholder.
    async fn emit(&self, kind: EventKind, mut data: Value) -> Result<(), AgentError> {
        self.vault.redact_json(&mut data);
        self.ctx.emit(kind, data).await?;
        Ok(())
    }

    fn spec(&self) -> &SessionSpec {
        self.ctx.spec()
    }

    async fn drive(&mut self) -> Result<Completion, AgentError> {
        let start = self.spec().start_url.clone();
        self.emit(EventKind::BrowserStarted, json!({"url": start.as_deref().unwrap_or("about:blank")})).await?;
        if let Some(url) = start {
            // Opening the start page is the session's set-up, not one of the model's actions.
            let action = Action::Navigate { url };
            let result = self.browser.act(&action).await;
            let elapsed = result.as_ref().map(|o| o.elapsed).unwrap_or_default();
            let summary = result.map(|o| o.description).map_err(|e| e.to_string());
            self.report_action(action.name(), Some(&action), &summary, elapsed).await?;
            if let Err(error) = summary {
                self.notes.push(format!("Opening the start page failed: {error}"));
            }
        }
        loop {
            self.ctx.checkpoint().await?;
            self.step += 1;
            if let Some(done) = self.one_step().await? {
                return Ok(done);
            }
        }
    }

    /// Observe, ask, act. `Some` when the task is done.
    async fn one_step(&mut self) -> Result<Option<Completion>, AgentError> {
        if let Some(recovery) = self.browser.recover().await.map_err(browser_failed)? {
            self.emit(EventKind::Log, json!({"level": "error", "cause": recovery.cause.as_str(), "message": recovery.message}))
                .await?;
            self.notes.push(format!("The browser had a problem: {}", recovery.message));
        }
        let observed = Instant::now();
        let state = self.browser.observe().await.map_err(browser_failed)?;
        let observe_ms = ms(observed.elapsed());
        let page = state.render_within(self.settings.page_tokens);
        let request = self.request(&page);
        self.notes.clear();
        let asked = Instant::now();
        let reply = self.llm.chat(&request).await.map_err(|e| AgentError::failed("llm_error", format!("the LLM call failed: {e}")))?;
        let llm_ms = ms(asked.elapsed());
        self.account(&reply);
        let reasoning = Reasoning::parse(&reply.text);
        if !reasoning.memory.is_empty() {
            self.memory = reasoning.memory.clone();
        }
        self.emit(
                EventKind::Thought,
                json!({
                    "step": self.step,
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
            let step = match tools::parse(call) {
                Ok(step) => step,
                Err(error) => {
                    self.failed_step(error)?;
                    break;
                }
            };
            let ends_turn = step.ends_turn();
            match step {
                Step::Done { response, kind } => match answer::accept(response, kind, self.spec().output_schema.as_ref()) {
                    Ok(done) => return Ok(Some(done)),
                    Err(error) => {
                        self.failed_step(format!("done was not accepted: {error}"))?;
                    }
                },
                Step::Browser { action, flagged } => {
                    let judged = self.vault.reveal_action(&action).unwrap_or_else(|_| action.clone());
                    self.confirm_if_sensitive(&judged, flagged).await?;
                    let failed = !self.browser_action(&action, &page).await?;
                    let navigated = self.page_moved(&url_before).await;
                    if (failed || navigated) && i + 1 < total {
                        let why = if failed { "an action failed" } else { "the page changed" };
                        self.history.push(format!("  ({} more actions of this step skipped: {why})", total - i - 1));
                        break;
                    }
                }
                Step::Extract => self.extract().await?,
                Step::RequestInput { field_name, reason } => {
                    let answer = self.ctx.request_input(&field_name, &reason).await?;
                    self.record(&format!("asked the user for {field_name}"), "answered");
                    self.notes.push(format!("The user's answer for {field_name}: {answer}"));
                }
                Step::RequestPermission { reason } => {
                    let granted = self.ctx.request_permission(&reason).await?;
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

    fn request(&self, page: &str) -> ChatRequest {
        let shown_from = self.history.len().saturating_sub(self.settings.history_steps);
        let message = prompt::step_message(&StepInput {
            spec: self.spec(),
            actions_left: self.spec().max_actions.saturating_sub(self.actions_done),
            history: &self.history[shown_from..],
            earlier_steps: shown_from,
            memory: &self.memory,
            notes: &self.notes,
            secrets: self.vault.prompt_line(),
            page,
        });
        // The page may show a typed secret; the model never sees a value.
        let message = self.vault.redact(&message);
        ChatRequest {
            model: self.spec().model.clone(),
            system: Some(prompt::SYSTEM.to_owned()),
            messages: vec![Message::User(vec![Content::Text(message)])],
            tools: tools::specs(),
            tool_choice: ToolChoice::Required,
            ..ChatRequest::default()
        }
    }

    fn account(&self, reply: &ChatResponse) {
        self.ctx.add_usage(&Usage {
            input_tokens: reply.usage.input_tokens,
            output_tokens: reply.usage.output_tokens,
            cost_usd: reply.cost_usd,
        });
    }

    /// Asks a person before an action that submits a password or payment form, leaves the
    /// allowed domains, starts a download, or that the model flagged; a denial stops the
    /// session. Never acts first and asks after.
    async fn confirm_if_sensitive(&mut self, action: &Action, flagged: Option<String>) -> Result<(), AgentError> {
        let (code, message, host) = match flagged {
            Some(reason) => ("model_flagged", format!("The agent asks to confirm {}: {reason}", action.name()), None),
            None => match self.browser.sensitivity(action).await.map_err(browser_failed)? {
                Some(sensitive) => (sensitive.code, sensitive.message, sensitive.host),
                None => return Ok(()),
            },
        };
        let message = self.vault.redact(&message);
        if !self.ctx.safety_check(code, &message).await? {
            return Err(AgentError::Stopped { reason: format!("a person denied the safety check: {message}") });
        }
        if let Some(host) = host {
            self.browser.allow_host(&host);
        }
        self.record(&format!("safety check {code}"), "confirmed by the user");
        Ok(())
    }

    async fn browser_action(&mut self, action: &Action, page: &str) -> Result<bool, AgentError> {
        let max = self.spec().max_actions;
        if self.actions_done >= max {
            return Err(AgentError::failed("max_actions", format!("the session used all of its {max} actions without finishing the task")));
        }
        let described = serde_json::to_string(action).unwrap_or_default();
        match self.guard.record(page, &described) {
            Verdict::Fine => {}
            Verdict::Nudge(nudge) => self.notes.push(nudge),
            Verdict::Stop(why) => return Err(AgentError::failed("loop", format!("stopped a looping agent: {why}"))),
        }
        let revealed = match self.vault.reveal_action(action) {
            Ok(revealed) => revealed,
            Err(error) => {
                self.failed_step(format!("{}: {error}", action.name()))?;
                return Ok(false);
            }
        };
        let result = self.browser.act(&revealed).await;
        self.actions_done += 1;
        let elapsed = result.as_ref().map(|o| o.elapsed).unwrap_or_default();
        let summary = result.map(|o| o.description).map_err(|e| e.to_string());
        self.report_action(action.name(), Some(action), &summary, elapsed).await?;
        match summary {
            Ok(description) => {
                self.failures = 0;
                self.record(action.name(), &description);
                Ok(true)
            }
            Err(error) => {
                self.failed_step(format!("{} failed: {error}", action.name()))?;
                Ok(false)
            }
        }
    }

    /// An `action` event (`action` is None for the agent's own moves, such as extract).
    async fn report_action(&self, name: &str, action: Option<&Action>, summary: &Result<String, String>, elapsed: Duration) -> Result<(), AgentError> {
        let mut data = json!({
            "step": self.step,
            "name": name,
            "description": summary.as_ref().unwrap_or_else(|e| e),
            "ok": summary.is_ok(),
            "elapsed_ms": ms(elapsed),
        });
        if let Some(action) = action {
            data["action"] = json!(action);
        }
        if let Err(error) = summary {
            data["error"] = Value::String(error.clone());
        }
        self.emit(EventKind::Action, data).await
    }

    async fn extract(&mut self) -> Result<(), AgentError> {
        let started = Instant::now();
        let result = agentd_browser::extract_markdown(self.browser.page()).await.map_err(|e| e.to_string());
        let summary = result.as_ref().map(|(_, outcome)| outcome.description.clone()).map_err(Clone::clone);
        self.report_action("extract", None, &summary, started.elapsed()).await?;
        match result {
            Ok((extracted, outcome)) => {
                let content = extracted.markdown;
                let cut: String = content.chars().take(self.settings.extract_tokens * 4).collect();
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
        match self.browser.page().url().await {
            Ok(Some(now)) => now != before,
            _ => true,
        }
    }

    /// A history line for what succeeded (failures go through [`Run::failed_step`]).
    fn record(&mut self, what: &str, result: &str) {
        self.history.push(format!("{}. {what}: {result}", self.step));
    }

    /// Counts a failure and tells the model; too many in a row end the session.
    fn failed_step(&mut self, error: String) -> Result<(), AgentError> {
        self.failures += 1;
        let max = self.settings.max_failures;
        if self.failures >= max {
            return Err(AgentError::failed("repeated_failures", format!("{max} failures in a row; the last: {error}")));
        }
        let step = self.step;
        self.history.push(format!("{step}. FAILED: {error}"));
        Ok(())
    }
}

fn browser_failed(error: agentd_browser::BrowserError) -> AgentError {
    AgentError::failed("browser_error", format!("the browser failed: {error}"))
}

fn ms(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 10_000.0).round() / 10.0
}
