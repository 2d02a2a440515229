//! Computer use: models that work from screenshots and answer with mouse and keyboard actions
//! at screen coordinates — OpenAI's Responses API with the `computer_use_preview` tool, and
//! Anthropic's computer tool.
//!
//! A [`ComputerConversation`] holds what the provider needs to go on (OpenAI: the previous
//! response's id; Anthropic: the whole message history, its older screenshots dropped) and
//! [`Llm::computer_turn`] sends the next [`TurnInput`] — the task and first screenshot, then the
//! results of the calls — and returns a [`ComputerTurn`]: the model's reasoning, its text, and
//! its [`ComputerCall`]s with any [`ProviderSafetyCheck`] it wants acknowledged first.
//!
//! Coordinates are in the screen the model was shown ([`Screen`], from [`Llm::computer_screen`]);
//! the caller maps them back to its own.

mod anthropic;
mod openai;

use serde_json::Value;

use crate::client::Llm;
use crate::error::LlmError;
use crate::settings::ProviderKind;
use crate::TokenUsage;

/// The size of the screenshots the model is shown, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Screen {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// What a conversation is about.
#[derive(Clone, Debug)]
pub struct ComputerSetup {
    /// The model; `None` uses the settings' model.
    pub model: Option<String>,
    /// Standing instructions (the system prompt).
    pub instructions: String,
    /// The screen the model is shown.
    pub screen: Screen,
}

/// A point on the [`Screen`].
pub type Point = (i64, i64);

/// A mouse button.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Button {
    /// The left button.
    Left,
    /// The right button.
    Right,
    /// The middle button (the wheel).
    Middle,
    /// The "back" side button.
    Back,
    /// The "forward" side button.
    Forward,
}

/// One action the model asks for. A `None` point means "where the mouse is now".
#[derive(Clone, Debug, PartialEq)]
pub enum ComputerAction {
    /// Click once.
    Click {
        /// Where.
        at: Option<Point>,
        /// Which button.
        button: Button,
    },
    /// Click twice.
    DoubleClick {
        /// Where.
        at: Option<Point>,
    },
    /// Click three times.
    TripleClick {
        /// Where.
        at: Option<Point>,
    },
    /// Move the mouse.
    Move {
        /// Where to.
        to: Point,
    },
    /// Press the left button at the first point, move through the rest, release at the last.
    Drag {
        /// At least two points.
        path: Vec<Point>,
    },
    /// Turn the wheel at a point by so many pixels (positive: right, down).
    Scroll {
        /// Where.
        at: Option<Point>,
        /// Horizontal pixels.
        dx: i64,
        /// Vertical pixels.
        dy: i64,
    },
    /// Type text.
    Type {
        /// The text.
        text: String,
    },
    /// Press keys: each entry a key or a combination, `+`-joined (`ctrl+a`, `Return`).
    Keys {
        /// In order.
        combos: Vec<String>,
    },
    /// Wait before the next screenshot.
    Wait {
        /// How long, in milliseconds.
        ms: u64,
    },
    /// Just take a screenshot.
    Screenshot,
    /// An action agentd does not perform (its name in the provider's words).
    Unsupported {
        /// The provider's action name.
        name: String,
    },
}

/// A check the provider wants a person to acknowledge before the call it came with is made
/// (OpenAI: `malicious_instructions`, `irrelevant_domain`, `sensitive_domain`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderSafetyCheck {
    /// The provider's id of the check.
    pub id: String,
    /// Its code.
    pub code: String,
    /// Its message.
    pub message: String,
}

/// One action call.
#[derive(Clone, Debug, PartialEq)]
pub struct ComputerCall {
    /// The id its result answers.
    pub id: String,
    /// What to do.
    pub action: ComputerAction,
    /// Checks to acknowledge before doing it.
    pub safety_checks: Vec<ProviderSafetyCheck>,
}

/// The model's answer to one turn.
#[derive(Clone, Debug, PartialEq)]
pub struct ComputerTurn {
    /// Its reasoning (OpenAI's reasoning summaries; Anthropic's text before its calls).
    pub reasoning: Vec<String>,
    /// Its message to the user (with no calls: its final answer, or a question).
    pub text: String,
    /// The actions it wants, in order.
    pub calls: Vec<ComputerCall>,
    /// Tokens used.
    pub usage: TokenUsage,
    /// What the turn cost in US dollars.
    pub cost_usd: f64,
    /// HTTP attempts made.
    pub attempts: u32,
}

/// An image given to the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// `image/png` or `image/jpeg`.
    pub media_type: String,
    /// Its bytes in standard base64.
    pub data_base64: String,
}

/// The outcome of one [`ComputerCall`].
#[derive(Clone, Debug, PartialEq)]
pub struct CallResult {
    /// The call's id.
    pub call_id: String,
    /// The screen after the action.
    pub screenshot: Image,
    /// The page's URL after the action (browser environments).
    pub url: Option<String>,
    /// The provider's checks a person confirmed.
    pub acknowledged: Vec<ProviderSafetyCheck>,
    /// Why the action failed, if it did.
    pub error: Option<String>,
}

/// What the next turn tells the model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TurnInput {
    /// Results of every call of the previous turn.
    pub results: Vec<CallResult>,
    /// Text for the model (the task at first; later a note, or the user's reply).
    pub text: Option<String>,
    /// A screenshot beside the text (the first turn).
    pub screenshot: Option<Image>,
}

/// A computer-use conversation's state between turns.
#[derive(Clone, Debug)]
pub struct ComputerConversation {
    setup: ComputerSetup,
    state: State,
}

#[derive(Clone, Debug)]
enum State {
    OpenAi(openai::Conversation),
    Anthropic(anthropic::Conversation),
}

impl ComputerConversation {
    /// The setup it was started with.
    pub fn setup(&self) -> &ComputerSetup {
        &self.setup
    }
}

/// The screen a provider's model is best shown for a `width`×`height` viewport: never larger,
/// the aspect ratio kept. OpenAI reads images at most 2048 px on the long side and 768 px on
/// the short one; Anthropic at most 1568 px on the long side and about 1.15 megapixels.
pub(crate) fn screen_for(provider: ProviderKind, width: u32, height: u32) -> Screen {
    let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    let (long, short) = (w.max(h), w.min(h));
    let scale = match provider {
        ProviderKind::OpenAi => (2048.0 / long).min(768.0 / short),
        ProviderKind::Anthropic => (1568.0 / long).min((1_150_000.0 / (w * h)).sqrt()),
    }
    .min(1.0);
    Screen { width: ((w * scale).floor() as u32).max(1), height: ((h * scale).floor() as u32).max(1) }
}

impl Llm {
    /// The screen size to show this provider's model for a `width`×`height` viewport (scale
    /// screenshots to it, and map the model's coordinates back by the same ratio).
    pub fn computer_screen(&self, width: u32, height: u32) -> Screen {
        screen_for(self.provider(), width, height)
    }

    /// A new conversation (no request is made).
    pub fn computer_conversation(&self, setup: ComputerSetup) -> ComputerConversation {
        let state = match self.provider() {
            ProviderKind::OpenAi => State::OpenAi(openai::Conversation::default()),
            ProviderKind::Anthropic => State::Anthropic(anthropic::Conversation::default()),
        };
        ComputerConversation { setup, state }
    }

    /// Sends `input` and returns the model's next turn, retrying transient failures. The
    /// conversation moves on only when the call succeeds (a failed turn may be sent again).
    pub async fn computer_turn(&self, conversation: &mut ComputerConversation, input: TurnInput) -> Result<ComputerTurn, LlmError> {
        let model = conversation.setup.model.clone().filter(|m| !m.trim().is_empty()).unwrap_or_else(|| self.default_model().to_owned());
        match &mut conversation.state {
            State::OpenAi(state) => {
                let body = openai::request_body(state, &conversation.setup, &model, &input);
                let (bytes, attempts) = self.post_json(openai::PATH, &[], &body).await?;
                let (reply, response_id) = openai::parse_response(&bytes)?;
                state.previous_response_id = Some(response_id);
                Ok(self.turn(&model, reply, attempts))
            }
            State::Anthropic(state) => {
                let tool = anthropic::ComputerTool::for_model(&model);
                let mut next = state.clone();
                next.push_user(&input);
                let body = next.request_body(&conversation.setup, &model, tool);
                let (bytes, attempts) = self.post_json(anthropic::PATH, &[("anthropic-beta", tool.beta)], &body).await?;
                let (reply, content) = anthropic::parse_response(&bytes)?;
                next.push_assistant(content);
                *state = next;
                Ok(self.turn(&model, reply, attempts))
            }
        }
    }

    fn turn(&self, model: &str, reply: Reply, attempts: u32) -> ComputerTurn {
        let cost_usd = self.cost(reply.model.as_deref().filter(|m| self.has_price(m)).unwrap_or(model), &reply.usage);
        ComputerTurn { reasoning: reply.reasoning, text: reply.text, calls: reply.calls, usage: reply.usage, cost_usd, attempts }
    }
}

/// What a wire format reads from a response.
#[derive(Debug, Default)]
struct Reply {
    reasoning: Vec<String>,
    text: String,
    calls: Vec<ComputerCall>,
    usage: TokenUsage,
    model: Option<String>,
}

/// A point from a JSON `[x, y]` pair.
fn pair(value: &Value) -> Option<Point> {
    Some((value.get(0)?.as_f64()?.round() as i64, value.get(1)?.as_f64()?.round() as i64))
}

fn data_url(image: &Image) -> String {
    format!("data:{};base64,{}", image.media_type, image.data_base64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screens_are_scaled_as_each_provider_reads_images() {
        let s = |p, w, h| {
            let s = screen_for(p, w, h);
            (s.width, s.height)
        };
        assert_eq!(s(ProviderKind::OpenAi, 1024, 768), (1024, 768));
        assert_eq!(s(ProviderKind::OpenAi, 1920, 1080), (1365, 768));
        assert_eq!(s(ProviderKind::Anthropic, 1024, 768), (1024, 768));
        assert_eq!(s(ProviderKind::Anthropic, 1280, 800), (1280, 800));
        assert_eq!(s(ProviderKind::Anthropic, 1920, 1080), (1429, 804));
        assert_eq!(s(ProviderKind::Anthropic, 400, 300), (400, 300));
    }
}
