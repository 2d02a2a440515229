//! JavaScript dialogs (alert, confirm, prompt, beforeunload): answered at once by policy, so
//! a page never stalls an agent, and recorded so the agent is told what happened.

use std::sync::{Arc, Mutex};

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::page::{DialogType, EventJavascriptDialogOpening, HandleJavaScriptDialogParams};
use futures::StreamExt;
use tokio::task::JoinHandle;

/// How dialogs are answered. The default is careful: alerts and leaving a page are
/// accepted; confirms and prompts are dismissed (an agent should not approve what it did
/// not choose), and the record says so.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialogPolicy {
    /// Accept `confirm()` dialogs.
    pub accept_confirms: bool,
    /// Answer `prompt()` dialogs with this text (None dismisses them).
    pub prompt_answer: Option<String>,
}

/// A dialog the page opened and how it was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogRecord {
    /// alert, confirm, prompt or beforeunload.
    pub kind: String,
    /// Its message.
    pub message: String,
    /// Accepted (OK) or dismissed (Cancel).
    pub accepted: bool,
    /// The text given to a prompt.
    pub prompt_text: Option<String>,
}

/// Answers a page's dialogs for as long as the page lives.
pub(crate) struct DialogGuard {
    task: JoinHandle<()>,
    pub log: Arc<Mutex<Vec<DialogRecord>>>,
}

impl DialogGuard {
    pub async fn watch(page: &Page, policy: DialogPolicy) -> Result<Self, chromiumoxide::error::CdpError> {
        let mut events = page.event_listener::<EventJavascriptDialogOpening>().await?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let record = log.clone();
        let page = page.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let (accepted, prompt_text) = match event.r#type {
                    DialogType::Alert | DialogType::Beforeunload => (true, None),
                    DialogType::Confirm => (policy.accept_confirms, None),
                    DialogType::Prompt => match &policy.prompt_answer {
                        Some(text) => (true, Some(text.clone())),
                        None => (false, None),
                    },
                };
                let mut answer = HandleJavaScriptDialogParams::new(accepted);
                answer.prompt_text = prompt_text.clone();
                if let Err(error) = page.execute(answer).await {
                    tracing::debug!(%error, "could not answer a dialog");
                }
                record.lock().unwrap_or_else(|e| e.into_inner()).push(DialogRecord {
                    kind: event.r#type.as_ref().to_owned(),
                    message: event.message.clone(),
                    accepted,
                    prompt_text,
                });
            }
        });
        Ok(Self { task, log })
    }

    /// Takes the dialogs recorded since the last call.
    pub fn drain(&self) -> Vec<DialogRecord> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for DialogGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}
