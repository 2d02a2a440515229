//! What both browser drivers (DOM and computer use) share: the session's browser, its secrets
//! and counters, and the one way to open the start page, ask a person before a sensitive
//! action, act, and report it as an event.

use std::sync::Arc;
use std::time::Duration;

use agentd_browser::{Action, SessionBrowser};
use agentd_domain::{EventKind, SessionSpec, Usage};
use agentd_engine::{AgentError, SessionContext};
use serde_json::{Value, json};

use crate::browser_agent::BrowserAgentSettings;
use crate::loop_guard::{LoopGuard, Verdict};
use crate::secrets::{Revealed, Vault};

/// One session's browser run, whichever driver decides the actions.
pub(crate) struct BrowserRun {
    pub(crate) ctx: SessionContext,
    pub(crate) browser: SessionBrowser,
    /// Shared with the browser, which asks it about every document request.
    pub(crate) vault: Arc<Vault>,
    pub(crate) settings: BrowserAgentSettings,
    /// The current step (one LLM call each), from 1.
    pub(crate) step: u32,
    actions_done: u32,
    failures: u32,
    guard: LoopGuard,
    /// Downloads already told about.
    downloads_seen: usize,
}

/// What came of one action: its description or its error, and a note for the model when it
/// repeats itself.
pub(crate) struct Acted {
    pub(crate) result: Result<String, String>,
    pub(crate) nudge: Option<String>,
}

impl BrowserRun {
    pub(crate) fn new(ctx: SessionContext, mut browser: SessionBrowser, vault: Vault, settings: BrowserAgentSettings) -> Self {
        let guard = LoopGuard::new(settings.loop_nudge_at, settings.loop_stop_at);
        // Every capture of the session (the live screen, the kept ones, the model's) hides them,
        // and no document request (a form sent, a redirect) carries one to a host not its own.
        browser.screen_mask().set(vault.screen_values());
        let vault = Arc::new(vault);
        if !vault.is_empty() {
            browser.check_outgoing_with(vault.clone());
        }
        ctx.show_screen(Some(Arc::new(browser.screen())));
        Self { ctx, browser, vault, settings, step: 0, actions_done: 0, failures: 0, guard, downloads_seen: 0 }
    }

    pub(crate) fn spec(&self) -> &SessionSpec {
        self.ctx.spec()
    }

    pub(crate) fn actions_left(&self) -> u32 {
        self.spec().max_actions.saturating_sub(self.actions_done)
    }

    /// Records an event with every secret value replaced by its placeholder.
    pub(crate) async fn emit(&self, kind: EventKind, mut data: Value) -> Result<(), AgentError> {
        self.vault.redact_json(&mut data);
        self.ctx.emit(kind, data).await?;
        Ok(())
    }

    /// Adds one LLM call's tokens and cost to the session.
    pub(crate) fn account(&self, input_tokens: u64, output_tokens: u64, cost_usd: f64) {
        self.ctx.add_usage(&Usage { input_tokens, output_tokens, cost_usd });
    }

    /// Emits `browser_started` and opens the start page (the session's set-up, not one of the
    /// model's actions). A failure is returned as a note for the model.
    pub(crate) async fn open_start_page(&mut self) -> Result<Option<String>, AgentError> {
        let start = self.spec().start_url.clone();
        self.emit(EventKind::BrowserStarted, json!({"url": start.as_deref().unwrap_or("about:blank")})).await?;
        let Some(url) = start else { return Ok(None) };
        let action = Action::Navigate { url };
        let result = self.browser.act(&action).await;
        let elapsed = result.as_ref().map(|o| o.elapsed).unwrap_or_default();
        let summary = result.map(|o| o.description).map_err(|e| e.to_string());
        self.report_action(action.name(), Some(&action), &summary, elapsed).await?;
        Ok(summary.err().map(|error| format!("Opening the start page failed: {error}")))
    }

    /// Recovers a crashed or stuck page; what happened, as a note for the model.
    pub(crate) async fn recover(&mut self) -> Result<Option<String>, AgentError> {
        let Some(recovery) = self.browser.recover().await.map_err(browser_failed)? else { return Ok(None) };
        self.emit(EventKind::Log, json!({"level": "error", "cause": recovery.cause.as_str(), "message": recovery.message}))
            .await?;
        Ok(Some(format!("The browser had a problem: {}", recovery.message)))
    }

    /// What the page did on its own since the last call — requests refused on the way out (by
    /// the egress policy, the allowed domains or the secrets' scopes), dialogs it opened (and
    /// how they were answered) and files that finished downloading — as `log` events and notes
    /// for the model.
    pub(crate) async fn page_news(&mut self) -> Result<Vec<String>, AgentError> {
        let mut news = Vec::new();
        for refusal in self.browser.take_refusals() {
            let line = format!("The browser blocked a request: {refusal}.");
            self.emit(EventKind::Log, json!({"level": "warn", "code": "egress_refused", "message": line})).await?;
            news.push(line);
        }
        for dialog in self.browser.take_dialogs() {
            let answer = if dialog.accepted { "accepted" } else { "dismissed" };
            news.push(format!("The page opened a {} dialog saying \"{}\"; it was {answer}.", dialog.kind, dialog.message));
        }
        let downloads = self.browser.downloads();
        for download in downloads.iter().skip(self.downloads_seen) {
            news.push(format!("The file {} ({} bytes) was downloaded.", download.name, download.bytes));
        }
        self.downloads_seen = self.downloads_seen.max(downloads.len());
        for line in news.iter().skip_while(|line| line.starts_with("The browser blocked")) {
            self.emit(EventKind::Log, json!({"level": "info", "message": line})).await?;
        }
        Ok(news.into_iter().map(|line| self.vault.redact(&line)).collect())
    }

    /// Asks a person to confirm a safety check; a denial stops the session. `host`, once
    /// confirmed, may be opened from then on.
    pub(crate) async fn confirm(&mut self, code: &str, message: &str, host: Option<String>) -> Result<(), AgentError> {
        let message = self.vault.redact(message);
        if !self.ctx.safety_check(code, &message).await? {
            return Err(AgentError::Stopped { reason: format!("a person denied the safety check: {message}") });
        }
        if let Some(host) = host {
            self.browser.allow_host(&host);
        }
        Ok(())
    }

    /// Asks a person before an action that submits a password or payment form, leaves the
    /// allowed domains, starts a download, or that the model flagged (with its reason); a
    /// denial stops the session. Never acts first and asks after. The code confirmed, if any.
    pub(crate) async fn confirm_if_sensitive(&mut self, action: &Action, flagged: Option<String>) -> Result<Option<&'static str>, AgentError> {
        // Judged on what will really happen: secrets revealed. An action whose secrets may not
        // go where it would send them is refused by `act` without asking anyone.
        let Ok(judged) = self.reveal(action).await.map(|r| r.action) else { return Ok(None) };
        let (code, message, host) = match flagged {
            Some(reason) => ("model_flagged", format!("The agent asks to confirm {}: {reason}", action.name()), None),
            None => match self.browser.sensitivity(&judged).await.map_err(browser_failed)? {
                Some(sensitive) => (sensitive.code, sensitive.message, sensitive.host),
                None => return Ok(None),
            },
        };
        self.confirm(code, &message, host).await?;
        Ok(Some(code))
    }

    /// Performs one of the model's actions: counts it against `max_actions`, watches for
    /// loops (`state` is what the model saw), types secrets in by placeholder, acts, and emits
    /// the `action` event. A failed action is counted by [`BrowserRun::failed`] by the caller.
    pub(crate) async fn act(&mut self, action: &Action, state: &str) -> Result<Acted, AgentError> {
        let max = self.spec().max_actions;
        if self.actions_done >= max {
            return Err(AgentError::failed("max_actions", format!("the session used all of its {max} actions without finishing the task")));
        }
        let described = serde_json::to_string(action).unwrap_or_default();
        let nudge = match self.guard.record(state, &described) {
            Verdict::Fine => None,
            Verdict::Nudge(nudge) => Some(nudge),
            Verdict::Stop(why) => return Err(AgentError::failed("loop", format!("stopped a looping agent: {why}"))),
        };
        let revealed = match self.reveal(action).await {
            Ok(revealed) => revealed,
            Err(error) => {
                let refused = Err(format!("refused: {error}"));
                self.report_action(action.name(), Some(action), &refused, Duration::ZERO).await?;
                return Ok(Acted { result: refused.map_err(|error| format!("{} {error}", action.name())), nudge });
            }
        };
        if revealed.types_secrets() {
            self.vault.note_typed(&revealed);
            // Masked before the value goes in: no capture in between can show it.
            self.browser.mask_typing_target(action).await.map_err(|e| AgentError::failed("browser_error", format!("the browser failed: {e}")))?;
        }
        let result = self.browser.act(&revealed.action).await;
        self.actions_done += 1;
        let elapsed = result.as_ref().map(|o| o.elapsed).unwrap_or_default();
        let mut summary = result.map(|o| o.description).map_err(|e| e.to_string());
        if summary.is_ok()
            && let Some(left) = self.left_allowed_domains().await
        {
            summary = Err(left);
        }
        self.report_action(action.name(), Some(action), &summary, elapsed).await?;
        if summary.is_ok() {
            self.failures = 0;
        }
        Ok(Acted { result: summary.map_err(|error| format!("{} failed: {error}", action.name())), nudge })
    }

    /// `action` with its secrets revealed, if they may go where it sends them: text typed into
    /// a page of their sites (the document of the element typed into, or of the focus), a URL
    /// of their site. Otherwise why not, for the model (placeholders and hosts, no values).
    async fn reveal(&self, action: &Action) -> Result<Revealed, String> {
        let typed_into = if Vault::types_a_secret(action) {
            self.browser.typing_origin(action).await.map_err(|e| e.to_string())?
        } else {
            None
        };
        self.vault.reveal_action(action, typed_into.as_deref())
    }

    /// When the page went outside the allowed domains on its own (a script or a redirect: the
    /// actions that lead there by a link or a URL are asked about first), goes back and says why.
    async fn left_allowed_domains(&mut self) -> Option<String> {
        let url = self.browser.page().url().await.ok().flatten()?;
        let host = self.browser.url_policy().outside_allowed(&url)?;
        let back = self.browser.act(&Action::Back).await;
        let returned = if back.is_ok() { "went back" } else { "could not go back" };
        Some(format!("the page went to {host}, outside the allowed domains; {returned}"))
    }

    /// An `action` event (`action` is None for the agent's own moves, such as extract).
    pub(crate) async fn report_action(
        &self,
        name: &str,
        action: Option<&Action>,
        summary: &Result<String, String>,
        elapsed: Duration,
    ) -> Result<(), AgentError> {
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

    /// Counts a failure; too many in a row end the session.
    pub(crate) fn failed(&mut self, error: &str) -> Result<(), AgentError> {
        self.failures += 1;
        let max = self.settings.max_failures;
        if self.failures >= max {
            return Err(AgentError::failed("repeated_failures", format!("{max} failures in a row; the last: {error}")));
        }
        Ok(())
    }

    /// Ends the run: the answer and errors with secrets redacted, the browser context closed.
    pub(crate) async fn finish<T>(self, result: Result<T, AgentError>, redact: impl FnOnce(&Vault, &mut T)) -> Result<T, AgentError> {
        let result = match result {
            Ok(mut done) => {
                redact(&self.vault, &mut done);
                Ok(done)
            }
            Err(AgentError::Failed { message, reason }) => Err(AgentError::Failed { message: self.vault.redact(&message), reason }),
            Err(AgentError::Stopped { reason }) => Err(AgentError::Stopped { reason: self.vault.redact(&reason) }),
            Err(other) => Err(other),
        };
        self.ctx.keep_screen().await;
        self.ctx.show_screen(None);
        if let Err(error) = self.browser.close().await {
            tracing::debug!(%error, "closing a session's browser context failed");
        }
        result
    }
}

pub(crate) fn browser_failed(error: agentd_browser::BrowserError) -> AgentError {
    AgentError::failed("browser_error", format!("the browser failed: {error}"))
}

/// Milliseconds with one decimal.
pub(crate) fn ms(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 10_000.0).round() / 10.0
}
