//! The computer-use driver (`driver: computer_use`): the model sees screenshots scaled to the
//! screen its provider expects and answers with mouse and keyboard actions at coordinates,
//! which are mapped back to the viewport and performed in the session's browser. The
//! provider's own pending safety checks become the session's safety checks and are
//! acknowledged on the next call once a person confirmed them; agentd's own checks (password
//! or payment forms, other domains, downloads) are raised before the action as with the DOM
//! driver. A reply with no action is the final answer, or, when it asks a question, a question
//! for the user whose reply goes back to the model.

use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use agentd_browser::{Action, ClickKind};
use agentd_domain::{EventKind, ResponseType};
use agentd_engine::{AgentError, Completion};
use agentd_llm::{
    Button, CallResult, ComputerAction, ComputerConversation, ComputerSetup, ComputerTurn, Image, Llm, Point, Screen, TurnInput,
};
use base64::Engine;
use serde_json::json;

use crate::answer;
use crate::run::{BrowserRun, browser_failed, ms};

/// The longest `wait` the model may ask for at once.
const MAX_WAIT: Duration = Duration::from_secs(10);

const INSTRUCTIONS: &str = "You operate a web browser to reach the user's goal. You see screenshots of the page and act \
with the computer tool. Work step by step; never ask for confirmation of routine steps. When the goal is reached (or cannot \
be), reply with your final answer as text and no action: it is handed to the user as the result.";

/// One computer-use session.
pub(crate) struct ComputerRun {
    pub(crate) run: BrowserRun,
    llm: Llm,
    /// The screen the model sees.
    screen: Screen,
    /// Viewport CSS pixels per screen pixel.
    scale: f64,
    /// Where the mouse is, in viewport pixels.
    cursor: (f64, f64),
    /// Text for the model with its next results.
    notes: Vec<String>,
    /// A digest of the last screenshot (the loop guard's view of the page).
    last_screen: u64,
}

impl ComputerRun {
    pub(crate) fn new(run: BrowserRun, llm: Llm) -> Self {
        let viewport = run.browser.viewport();
        let screen = llm.computer_screen(viewport.width, viewport.height);
        let scale = f64::from(viewport.width) / f64::from(screen.width.max(1));
        Self { run, llm, screen, scale, cursor: (0.0, 0.0), notes: Vec::new(), last_screen: 0 }
    }

    pub(crate) async fn drive(&mut self) -> Result<Completion, AgentError> {
        self.notes.extend(self.run.open_start_page().await?);
        let mut conversation = self.llm.computer_conversation(ComputerSetup {
            model: self.run.spec().model.clone(),
            instructions: INSTRUCTIONS.to_owned(),
            screen: self.screen,
        });
        let (screenshot, mut observe_ms) = self.screenshot().await?;
        let mut input = TurnInput { text: Some(self.task()), screenshot: Some(screenshot), ..TurnInput::default() };
        loop {
            self.run.ctx.checkpoint().await?;
            self.run.step += 1;
            let turn = self.ask(&mut conversation, input, observe_ms).await?;
            if turn.calls.is_empty() {
                match self.conclude(turn.text).await? {
                    Ok(done) => return Ok(done),
                    Err(reply) => {
                        let (screenshot, taken_ms) = self.screenshot().await?;
                        observe_ms = taken_ms;
                        input = TurnInput { text: Some(reply), screenshot: Some(screenshot), ..TurnInput::default() };
                        continue;
                    }
                }
            }
            let mut results = Vec::with_capacity(turn.calls.len());
            for call in turn.calls {
                let mut acknowledged = Vec::new();
                for check in call.safety_checks {
                    self.run.confirm(&check.code, &check.message, None).await?;
                    acknowledged.push(check);
                }
                let error = self.perform(&call.action).await?;
                let (screenshot, taken_ms) = self.screenshot().await?;
                observe_ms = taken_ms;
                // A typed secret may show in the URL or an error: the model sees placeholders only.
                let url = self.run.browser.page().url().await.ok().flatten().map(|u| self.run.vault.redact(&u));
                let error = error.map(|e| self.run.vault.redact(&e));
                results.push(CallResult { call_id: call.id, screenshot, url, acknowledged, error });
            }
            let news = self.run.page_news().await?;
            self.notes.extend(news);
            let notes = std::mem::take(&mut self.notes);
            input = TurnInput { results, text: (!notes.is_empty()).then(|| notes.join("\n")), screenshot: None };
        }
    }

    /// The first message: the goal, the secrets the model may type, what shape the answer takes.
    fn task(&mut self) -> String {
        let spec = self.run.spec();
        let mut lines = vec![format!("Goal: {}", spec.goal)];
        lines.extend(self.run.vault.prompt_line());
        if let Some(schema) = &spec.output_schema {
            lines.push(format!("Your final answer must be only JSON matching this schema: {schema}"));
        }
        lines.push(format!("You may take at most {} actions.", spec.max_actions));
        lines.append(&mut self.notes);
        self.run.vault.redact(&lines.join("\n"))
    }

    /// One call to the model, accounted for and reported as a `thought` event.
    async fn ask(&mut self, conversation: &mut ComputerConversation, input: TurnInput, observe_ms: f64) -> Result<ComputerTurn, AgentError> {
        if let Some(note) = self.run.recover().await? {
            self.notes.push(note);
        }
        let asked = Instant::now();
        let turn = self
            .llm
            .computer_turn(conversation, input)
            .await
            .map_err(|e| AgentError::failed("llm_error", format!("the LLM call failed: {e}")))?;
        self.run.account(turn.usage.input_tokens, turn.usage.output_tokens, turn.cost_usd);
        let next_goal = turn.calls.iter().map(|c| describe(&c.action)).collect::<Vec<_>>().join("; ");
        self.run
            .emit(
                EventKind::Thought,
                json!({
                    "step": self.run.step,
                    "thought": turn.reasoning.join("\n"),
                    "memory": "",
                    "next_goal": next_goal,
                    "observe_ms": observe_ms,
                    "llm_ms": ms(asked.elapsed()),
                    "input_tokens": turn.usage.input_tokens,
                    "output_tokens": turn.usage.output_tokens,
                }),
            )
            .await?;
        Ok(turn)
    }

    /// A reply without actions: `Ok` the session's answer; `Err` what to tell the model next
    /// (the user's reply to its question, or why its answer was not accepted).
    async fn conclude(&mut self, text: String) -> Result<Result<Completion, String>, AgentError> {
        let text = text.trim().to_owned();
        if text.ends_with('?') {
            let reply = self.run.ctx.request_input("reply", &self.run.vault.redact(&text)).await?;
            return Ok(Err(format!("The user replied: {reply}")));
        }
        let kind = if self.run.spec().output_schema.is_some() { ResponseType::Json } else { ResponseType::String };
        match answer::accept(text, kind, self.run.spec().output_schema.as_ref()) {
            Ok(done) => Ok(Ok(done)),
            Err(error) => {
                self.run.failed(&error)?;
                Ok(Err(format!("Your answer was not accepted: {error}. Go on, or answer again.")))
            }
        }
    }

    /// Performs one action; the error to tell the model, if it failed.
    async fn perform(&mut self, action: &ComputerAction) -> Result<Option<String>, AgentError> {
        let started = Instant::now();
        let browser_action = match action {
            ComputerAction::Screenshot => return Ok(None),
            ComputerAction::Wait { ms: wait } => {
                tokio::time::sleep(Duration::from_millis(*wait).min(MAX_WAIT)).await;
                let done = Ok(format!("waited {} ms", started.elapsed().as_millis()));
                self.run.report_action("wait", None, &done, started.elapsed()).await?;
                return Ok(None);
            }
            ComputerAction::Unsupported { name } => {
                let error = format!(
                    "the action `{name}` is not supported here; use click, double or triple click, move, drag, scroll, type, key presses or wait"
                );
                self.run.report_action(name, None, &Err(error.clone()), started.elapsed()).await?;
                self.run.failed(&error)?;
                return Ok(Some(error));
            }
            other => match self.browser_action(other) {
                Ok(action) => action,
                Err(error) => {
                    self.run.failed(&error)?;
                    return Ok(Some(error));
                }
            },
        };
        self.run.confirm_if_sensitive(&browser_action, None).await?;
        let acted = self.run.act(&browser_action, &self.last_screen.to_string()).await?;
        self.notes.extend(acted.nudge);
        match acted.result {
            Ok(_) => Ok(None),
            Err(error) => {
                self.run.failed(&error)?;
                Ok(Some(error))
            }
        }
    }

    /// The browser action for a model's action, in viewport pixels (the cursor follows).
    fn browser_action(&mut self, action: &ComputerAction) -> Result<Action, String> {
        let click = |run: &mut Self, at: &Option<Point>, button: ClickKind| {
            let (x, y) = run.point(at);
            run.cursor = (x, y);
            Action::ClickAt { x, y, button }
        };
        Ok(match action {
            ComputerAction::Click { button: Button::Back, .. } => Action::Back,
            ComputerAction::Click { button: Button::Forward, .. } => Action::Forward,
            ComputerAction::Click { at, button } => {
                let kind = match button {
                    Button::Right => ClickKind::Right,
                    Button::Middle => ClickKind::Middle,
                    _ => ClickKind::Single,
                };
                click(self, at, kind)
            }
            ComputerAction::DoubleClick { at } => click(self, at, ClickKind::Double),
            ComputerAction::TripleClick { at } => click(self, at, ClickKind::Triple),
            ComputerAction::Move { to } => {
                let (x, y) = self.point(&Some(*to));
                self.cursor = (x, y);
                Action::MoveTo { x, y }
            }
            ComputerAction::Drag { path } => {
                let path: Vec<[f64; 2]> = path.iter().map(|p| self.point(&Some(*p))).map(|(x, y)| [x, y]).collect();
                if let Some(&[x, y]) = path.last() {
                    self.cursor = (x, y);
                }
                Action::Drag { path }
            }
            ComputerAction::Scroll { at, dx, dy } => {
                let (x, y) = self.point(at);
                self.cursor = (x, y);
                Action::ScrollAt { x, y, dx: *dx as f64 * self.scale, dy: *dy as f64 * self.scale }
            }
            ComputerAction::Type { text } => Action::TypeText { text: text.clone() },
            ComputerAction::Keys { combos } => {
                if combos.is_empty() {
                    return Err("a key press names no key".into());
                }
                Action::PressKeys { keys: combos.clone() }
            }
            ComputerAction::Wait { .. } | ComputerAction::Screenshot | ComputerAction::Unsupported { .. } => {
                return Err(format!("{} is not a browser action", describe(action)));
            }
        })
    }

    /// A screen point in viewport pixels (`None`: where the mouse is).
    fn point(&self, at: &Option<Point>) -> (f64, f64) {
        match at {
            Some((x, y)) => ((*x as f64 * self.scale).round(), (*y as f64 * self.scale).round()),
            None => self.cursor,
        }
    }

    /// A PNG of the screen, scaled for the model, and how long it took.
    async fn screenshot(&mut self) -> Result<(Image, f64), AgentError> {
        let started = Instant::now();
        let png = agentd_browser::screen_png(self.run.browser.page(), self.screen.width, self.run.browser.screen_mask())
            .await
            .map_err(|e| match e {
                agentd_browser::ActionError::Browser(e) => browser_failed(e),
                other => AgentError::failed("browser_error", format!("the browser failed: {other}")),
            })?;
        let mut digest = std::collections::hash_map::DefaultHasher::new();
        png.hash(&mut digest);
        self.last_screen = digest.finish();
        let image = Image { media_type: "image/png".into(), data_base64: base64::engine::general_purpose::STANDARD.encode(png) };
        Ok((image, ms(started.elapsed())))
    }
}

/// A few words on what an action does (for the `thought` event's `next_goal`).
fn describe(action: &ComputerAction) -> String {
    let at = |p: &Option<Point>| p.map(|(x, y)| format!(" at ({x}, {y})")).unwrap_or_default();
    match action {
        ComputerAction::Click { at: p, button } => format!("{button:?} click{}", at(p)).to_lowercase(),
        ComputerAction::DoubleClick { at: p } => format!("double click{}", at(p)),
        ComputerAction::TripleClick { at: p } => format!("triple click{}", at(p)),
        ComputerAction::Move { to } => format!("move to ({}, {})", to.0, to.1),
        ComputerAction::Drag { path } => format!("drag through {} points", path.len()),
        ComputerAction::Scroll { at: p, dx, dy } => format!("scroll by ({dx}, {dy}){}", at(p)),
        ComputerAction::Type { text } => format!("type {} characters", text.chars().count()),
        ComputerAction::Keys { combos } => format!("press {}", combos.join(", ")),
        ComputerAction::Wait { ms } => format!("wait {ms} ms"),
        ComputerAction::Screenshot => "take a screenshot".into(),
        ComputerAction::Unsupported { name } => format!("unsupported action {name}"),
    }
}
