//! What the model reads each step: a fixed system prompt, and one user message built afresh
//! from the goal, a compact history of earlier steps, notes (answers, extracted content,
//! nudges) and the current page. No earlier page states are resent, so every step's prompt
//! stays within a bounded size however long the session runs.

use agentd_domain::SessionSpec;

/// The system prompt of the browser agent.
pub const SYSTEM: &str = "You are a browser agent: reach the user's goal with tools on a web page.
Each step shows the page: lines like `[12] button \"Save\"` are elements to act on by index (only indices shown; ↓/↑/→ Npx: out of view, still usable); other lines are its text.
Begin each reply with short lines `Thought:` (what you see), `Memory:` (progress, facts to keep), `Next:` (next goal), then call tools.
Call several tools in one reply when the page will not change between them (fill fields, submit last).
If an action fails, read the error and try another way.
Use request_user_input for what only the user knows, request_permission before what they may not want (buying, sending, deleting). An action's `sensitive` argument (a reason) has a person confirm it before it runs.
Call done with the answer when the goal is reached, or with why it cannot be.";

/// The system prompt for a session: [`SYSTEM`], and its agent version's instructions.
pub fn system(spec: &SessionSpec) -> String {
    with_instructions(SYSTEM, spec)
}

/// `base`, followed by the session's agent instructions when it has any.
pub fn with_instructions(base: &str, spec: &SessionSpec) -> String {
    match spec.instructions.as_deref().map(str::trim).filter(|i| !i.is_empty()) {
        Some(instructions) => format!("{base}\n\nInstructions for this agent:\n{instructions}"),
        None => base.to_owned(),
    }
}

/// The reasoning at the head of a reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reasoning {
    /// What the model sees and thinks.
    pub thought: String,
    /// What it wants to remember.
    pub memory: String,
    /// Its next goal.
    pub next_goal: String,
}

impl Reasoning {
    /// Reads `Thought:` / `Memory:` / `Next:` lines; text without labels is the thought.
    pub fn parse(text: &str) -> Self {
        let mut reasoning = Reasoning::default();
        let mut current: Option<&mut String> = None;
        let mut loose = Vec::new();
        for line in text.lines() {
            let trimmed = line.trim().trim_start_matches(['*', '-', '#', ' ']);
            let lower = trimmed.to_ascii_lowercase();
            let label = [("thought:", 0), ("memory:", 1), ("next goal:", 2), ("next:", 2)]
                .into_iter()
                .find(|(label, _)| lower.starts_with(label));
            match label {
                Some((label, which)) => {
                    let field = match which {
                        0 => &mut reasoning.thought,
                        1 => &mut reasoning.memory,
                        _ => &mut reasoning.next_goal,
                    };
                    *field = trimmed[label.len()..].trim().trim_start_matches('*').trim().to_owned();
                    current = Some(field);
                }
                None => match current.as_deref_mut() {
                    Some(field) if !trimmed.is_empty() => {
                        field.push(' ');
                        field.push_str(trimmed);
                    }
                    Some(_) => {}
                    None if !trimmed.is_empty() => loose.push(trimmed.to_owned()),
                    None => {}
                },
            }
        }
        if reasoning.thought.is_empty() && !loose.is_empty() {
            reasoning.thought = loose.join(" ");
        }
        reasoning
    }
}

/// Everything the step message is built from.
pub struct StepInput<'a> {
    /// The session.
    pub spec: &'a SessionSpec,
    /// Actions still allowed.
    pub actions_left: u32,
    /// One line per earlier step, oldest first (the caller keeps the most recent).
    pub history: &'a [String],
    /// Steps dropped from the front of `history`.
    pub earlier_steps: usize,
    /// The model's last memory.
    pub memory: &'a str,
    /// Things to tell the model once (answers, extracted content, nudges).
    pub notes: &'a [String],
    /// Which secrets it may type, if any.
    pub secrets: Option<String>,
    /// The page, rendered within its budget.
    pub page: &'a str,
}

/// The user message of one step.
pub fn step_message(input: &StepInput<'_>) -> String {
    let spec = input.spec;
    let mut out = format!("Goal: {}\n", spec.goal);
    if let Some(schema) = &spec.output_schema {
        out.push_str(&format!("Answer with done, type JSON, matching this JSON schema: {schema}\n"));
    }
    if !spec.allowed_domains.is_empty() {
        out.push_str(&format!("Stay on these sites: {}\n", spec.allowed_domains.join(", ")));
    }
    if let Some(line) = &input.secrets {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!("Actions left: {}\n", input.actions_left));
    if !input.history.is_empty() {
        out.push_str("\nSteps so far");
        if input.earlier_steps > 0 {
            out.push_str(&format!(" ({} earlier ones not shown)", input.earlier_steps));
        }
        out.push_str(":\n");
        for line in input.history {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !input.memory.is_empty() {
        out.push_str(&format!("\nYour memory: {}\n", input.memory));
    }
    for note in input.notes {
        out.push('\n');
        out.push_str(note);
        out.push('\n');
    }
    out.push_str("\nCurrent page:\n");
    out.push_str(input.page);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_is_read_from_labelled_lines() {
        let r = Reasoning::parse("Thought: the form is empty\nit has three fields\nMemory: nothing yet\n**Next goal:** fill the name");
        assert_eq!(r.thought, "the form is empty it has three fields");
        assert_eq!(r.memory, "nothing yet");
        assert_eq!(r.next_goal, "fill the name");
        assert_eq!(Reasoning::parse("I will click save.").thought, "I will click save.");
        assert_eq!(Reasoning::parse(""), Reasoning::default());
    }
}
