//! The research agent (modes `research`, `chat`, `coding`). A cycle is one model turn with
//! the tools `web_search`, `fetch_url` and `answer`: the model plans, searches, reads the most
//! promising results (several pages at once, bounded), and either answers or goes on, for at
//! most `max_cycles`; on the last cycle it must answer. The answer is Markdown with numbered
//! citations `[n]`, renumbered here to the sources it cites — only pages fetched in this
//! conversation can be cited (a marker of anything else is dropped). A follow-up session
//! (`continues`) sees the earlier questions, answers and sources, and may cite those. Each
//! cycle is a `thought` event and each search or fetch an `action` event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use agentd_domain::{EventKind, FieldError, Mode, ResponseType, SessionSpec, Source, Usage};
use agentd_engine::{Agent, AgentError, Completion, SessionContext, UserTool};
use agentd_llm::{ChatRequest, Content, Llm, Message, ToolCall, ToolChoice, ToolSpec};
use async_trait::async_trait;
use serde_json::{Value, json};

use crate::browser_agent::{NO_PROVIDER, require_llm};
use crate::run::ms;
use crate::search::SearchProvider;

/// Reads a page for the model: its final URL, title and main text.
#[async_trait]
pub trait PageReader: Send + Sync {
    /// The page at `url`, or why it could not be read (a sentence).
    async fn read(&self, url: &str) -> Result<ReadPage, String>;
}

/// A page as the model reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPage {
    /// Where it was read (after redirects).
    pub url: String,
    /// Its title.
    pub title: String,
    /// Its main content (Markdown or plain text).
    pub text: String,
}

/// Searches one turn may make (each waits for its provider).
const MAX_SEARCHES_PER_TURN: usize = 2;
/// Characters of an earlier question carried into a follow-up's prompt.
const EARLIER_QUESTION_CHARS: usize = 2_000;

/// Tunables of the research agent.
#[derive(Debug, Clone)]
pub struct ResearchSettings {
    /// Results asked of each search.
    pub results_per_search: usize,
    /// Pages read per cycle at most (they are read at once).
    pub fetches_per_cycle: usize,
    /// Characters of a page handed to the model.
    pub page_chars: usize,
}

impl Default for ResearchSettings {
    fn default() -> Self {
        Self { results_per_search: 6, fetches_per_cycle: 4, page_chars: 6_000 }
    }
}

/// The research agent.
pub struct ResearchAgent {
    llm: Option<Llm>,
    search: Arc<dyn SearchProvider>,
    reader: Arc<dyn PageReader>,
    settings: ResearchSettings,
}

impl ResearchAgent {
    /// An agent asking `llm` (None: sessions are refused with [`NO_PROVIDER`]), searching
    /// with `search` and reading pages with `reader`.
    pub fn new(llm: Option<Llm>, search: Arc<dyn SearchProvider>, reader: Arc<dyn PageReader>, settings: ResearchSettings) -> Self {
        Self { llm, search, reader, settings }
    }
}

#[async_trait]
impl Agent for ResearchAgent {
    fn admit(&self, _spec: &SessionSpec) -> Result<(), FieldError> {
        require_llm(&self.llm)
    }

    async fn run(&self, ctx: SessionContext) -> Result<Completion, AgentError> {
        let llm = self.llm.clone().ok_or_else(|| AgentError::failed("no_llm", NO_PROVIDER))?;
        let mut run = Research::new(&ctx, self, llm);
        run.user_tools = ctx.user_tools().await;
        run.start();
        let max_cycles = ctx.spec().max_cycles.max(1);
        for cycle in 1..=max_cycles {
            ctx.checkpoint().await?;
            if let Some(done) = run.cycle(cycle, false).await? {
                return Ok(done);
            }
        }
        // Out of cycles: one more turn, in which the model can only answer.
        ctx.checkpoint().await?;
        match run.cycle(max_cycles, true).await? {
            Some(done) => Ok(done),
            None => Err(AgentError::failed("no_answer", "the model gave no answer within max_cycles")),
        }
    }
}

/// A source the conversation can cite.
#[derive(Debug, Clone)]
struct Known {
    url: String,
    title: String,
    snippet: String,
    /// Whether its page was read (only read pages may be cited).
    read: bool,
}

/// One session's research.
struct Research<'a> {
    ctx: &'a SessionContext,
    agent: &'a ResearchAgent,
    llm: Llm,
    messages: Vec<Message>,
    /// Sources by id (1-based, in the order they became known).
    known: Vec<Known>,
    by_url: HashMap<String, usize>,
    /// What happened, for the answer's `steps`.
    steps: Vec<Value>,
    cycles: u32,
    /// The project's tools the agent version allows.
    user_tools: Vec<UserTool>,
}

impl<'a> Research<'a> {
    fn new(ctx: &'a SessionContext, agent: &'a ResearchAgent, llm: Llm) -> Self {
        Self { ctx, agent, llm, messages: Vec::new(), known: Vec::new(), by_url: HashMap::new(), steps: Vec::new(), cycles: 0, user_tools: Vec::new() }
    }

    fn mode(&self) -> Mode {
        self.ctx.spec().mode
    }

    /// The first message: the earlier conversation (its sources numbered, citable) and the
    /// question.
    fn start(&mut self) {
        let spec = self.ctx.spec().clone();
        let mut text = String::new();
        if !spec.conversation.is_empty() {
            text.push_str("Earlier in this conversation:\n");
            for turn in &spec.conversation {
                // The turn's own [n] are its sources' places: numbered conversation-wide here.
                let ids: Vec<usize> = turn.sources.iter().map(|s| self.know(&s.url, &s.title, &s.snippet, true)).collect();
                let answer = rewrite_citations(&turn.answer, |n| n.checked_sub(1).and_then(|i| ids.get(i)).copied());
                let question: String = turn.query.chars().take(EARLIER_QUESTION_CHARS).collect();
                text.push_str(&format!("\nQ: {question}\nA: {answer}\n"));
                for (source, id) in turn.sources.iter().zip(&ids) {
                    text.push_str(&format!("[{id}] {} — {}\n", source.title, source.url));
                }
            }
            text.push_str("\nThe sources above may be cited again by their numbers.\n\n");
        }
        text.push_str(&format!("Question: {}", spec.goal));
        self.messages.push(Message::user_text(text));
    }

    /// Registers a source (or finds it); its id.
    fn know(&mut self, url: &str, title: &str, snippet: &str, read: bool) -> usize {
        if let Some(&id) = self.by_url.get(url) {
            let known = &mut self.known[id - 1];
            known.read |= read;
            if known.title.is_empty() {
                known.title = title.to_owned();
            }
            return id;
        }
        self.known.push(Known { url: url.to_owned(), title: title.to_owned(), snippet: snippet.to_owned(), read });
        self.by_url.insert(url.to_owned(), self.known.len());
        self.known.len()
    }

    fn system(&self, last: bool) -> String {
        let role = match self.mode() {
            Mode::Chat => {
                "You are a helpful assistant. Answer the user's question directly with the `answer` tool. \
                 Use `web_search` and `fetch_url` only when the user asks for current, web or sourced information."
            }
            Mode::Coding => {
                "You are a research agent for technical questions. Find official documentation, reference manuals, \
                 changelogs and source code with `web_search`, read the most relevant with `fetch_url`, and answer \
                 with working code blocks where they help."
            }
            _ => {
                "You are a research agent. Find sources with `web_search`, read the most promising results with \
                 `fetch_url` (several in one turn), and answer with `answer` once you know enough."
            }
        };
        let mut system = format!(
            "{role}\nCite facts with [n], n being the number of a page you have read with fetch_url (or an earlier \
             source). Do not cite search results you did not read. The answer is Markdown.\n\
             Begin each turn with one short sentence saying what you do next."
        );
        if last {
            system.push_str("\nYou have used all your cycles: call `answer` now with what you have.");
        }
        crate::prompt::with_instructions(&system, self.ctx.spec())
    }

    /// Whether the session's agent version lets it use `tool` (all built-ins when it names none).
    fn allowed(&self, tool: &str) -> bool {
        self.ctx.spec().tools.as_ref().is_none_or(|tools| tools.iter().any(|t| t == tool))
    }

    fn tools(&self, last: bool) -> Vec<ToolSpec> {
        let answer = ToolSpec {
            name: "answer".into(),
            description: "Give the final answer (Markdown, with [n] citations of read pages).".into(),
            parameters: json!({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}),
        };
        if last {
            return vec![answer];
        }
        let mut tools = vec![
            ToolSpec {
                name: "web_search".into(),
                description: "Search the web; returns numbered results (title, URL, snippet).".into(),
                parameters: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
            },
            ToolSpec {
                name: "fetch_url".into(),
                description: "Read a page (a result's number as `id`, or a `url`); returns its main text.".into(),
                parameters: json!({"type": "object", "properties": {"id": {"type": "integer"}, "url": {"type": "string"}}}),
            },
            answer,
        ];
        tools.retain(|t| t.name == "answer" || self.allowed(&t.name));
        tools.extend(self.user_tools.iter().map(|t| ToolSpec { name: t.name.clone(), description: t.description.clone(), parameters: t.parameters.clone() }));
        tools
    }

    /// One model turn and its tools; the completion when it answered.
    async fn cycle(&mut self, cycle: u32, last: bool) -> Result<Option<Completion>, AgentError> {
        self.cycles = cycle;
        let spec = self.ctx.spec();
        let request = ChatRequest {
            model: spec.model.clone(),
            system: Some(self.system(last)),
            messages: self.messages.clone(),
            tools: self.tools(last),
            tool_choice: if last || self.mode() != Mode::Chat { ToolChoice::Required } else { ToolChoice::Auto },
            ..ChatRequest::default()
        };
        let asked = Instant::now();
        let reply = self.llm.chat(&request).await.map_err(|e| AgentError::failed("llm_error", format!("the LLM call failed: {e}")))?;
        self.ctx.add_usage(&Usage { input_tokens: reply.usage.input_tokens, output_tokens: reply.usage.output_tokens, cost_usd: reply.cost_usd });
        let thought = thought_of(&reply.text, &reply.tool_calls);
        self.steps.push(json!({"type": "step", "message": thought, "cycle": cycle}));
        self.ctx
            .emit(
                EventKind::Thought,
                json!({"cycle": cycle, "thought": thought, "llm_ms": ms(asked.elapsed()),
                       "input_tokens": reply.usage.input_tokens, "output_tokens": reply.usage.output_tokens}),
            )
            .await?;
        if reply.tool_calls.is_empty() {
            if reply.text.trim().is_empty() {
                return Err(AgentError::failed("empty_answer", "the model answered nothing"));
            }
            // A direct answer in text (chat models often skip the tool).
            return Ok(Some(self.finish(&reply.text)));
        }
        self.messages.push(Message::Assistant { text: reply.text.clone(), tool_calls: reply.tool_calls.clone() });
        if let Some(call) = reply.tool_calls.iter().find(|c| c.name == "answer") {
            let text = call.arguments["answer"].as_str().map(str::to_owned).unwrap_or_else(|| call.arguments.to_string());
            return Ok(Some(self.finish(&text)));
        }
        let mut fetches = Vec::new();
        let mut searches = 0;
        for call in &reply.tool_calls {
            match call.name.as_str() {
                name @ ("web_search" | "fetch_url") if !self.allowed(name) => {
                    self.messages.push(tool_error(call, format!("this agent may not use `{name}`")));
                }
                "web_search" if searches >= MAX_SEARCHES_PER_TURN => {
                    self.messages.push(tool_error(call, format!("at most {MAX_SEARCHES_PER_TURN} searches per turn; ask again next turn")));
                }
                "web_search" => {
                    searches += 1;
                    let result = self.search(cycle, call).await?;
                    self.messages.push(result);
                }
                "fetch_url" => fetches.push(call.clone()),
                other => {
                    let started = Instant::now();
                    let message = match self.ctx.call_user_tool(other, &call.arguments).await {
                        Some(Ok(text)) => {
                            let description = format!("called {other} ({} characters back)", text.chars().count());
                            self.tool_event(cycle, other, true, &description, json!({}), started).await?;
                            tool_text(call, text.chars().take(self.agent.settings.page_chars).collect())
                        }
                        Some(Err(error)) => {
                            self.tool_event(cycle, other, false, &error, json!({}), started).await?;
                            tool_error(call, error)
                        }
                        None => tool_error(call, format!("there is no tool `{other}`")),
                    };
                    self.messages.push(message);
                }
            }
        }
        for result in self.fetch_all(cycle, fetches).await? {
            self.messages.push(result);
        }
        Ok(None)
    }

    async fn search(&mut self, cycle: u32, call: &ToolCall) -> Result<Message, AgentError> {
        let Some(query) = call.arguments["query"].as_str().map(str::trim).filter(|q| !q.is_empty()) else {
            return Ok(tool_error(call, "web_search needs a `query`".into()));
        };
        let started = Instant::now();
        let limit = self.agent.settings.results_per_search;
        let result = self.agent.search.search(query, limit).await;
        let provider = self.agent.search.name();
        let (ok, description, message) = match result {
            Ok(hits) => {
                let mut lines = Vec::new();
                for hit in &hits {
                    let id = self.know(&hit.url, &hit.title, &hit.snippet, false);
                    lines.push(format!("[{id}] {} — {}\n{}", hit.title, hit.url, hit.snippet));
                }
                let text = if lines.is_empty() { "No results.".to_owned() } else { lines.join("\n\n") };
                (true, format!("searched {provider} for \"{query}\": {} results", hits.len()), tool_text(call, text))
            }
            Err(error) => (false, error.clone(), tool_error(call, error)),
        };
        self.tool_event(cycle, "web_search", ok, &description, json!({"query": query, "provider": provider}), started).await?;
        Ok(message)
    }

    /// Reads the pages asked for, at once (at most `fetches_per_cycle`); a result per call.
    async fn fetch_all(&mut self, cycle: u32, calls: Vec<ToolCall>) -> Result<Vec<Message>, AgentError> {
        let limit = self.agent.settings.fetches_per_cycle;
        let mut results: Vec<Option<Message>> = vec![None; calls.len()];
        let mut wanted = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            let id = match &call.arguments["id"] {
                Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64)),
                Value::String(text) => text.trim().trim_matches(['[', ']']).parse().ok(),
                _ => None,
            };
            let by_id = id
                .and_then(|id| usize::try_from(id).ok())
                .and_then(|id| id.checked_sub(1))
                .and_then(|index| self.known.get(index))
                .map(|k| k.url.clone());
            let url = by_id.or_else(|| call.arguments["url"].as_str().map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned));
            match url {
                None => results[i] = Some(tool_error(call, "fetch_url needs a result's `id` or a `url`".into())),
                Some(_) if wanted.len() >= limit => {
                    results[i] = Some(tool_error(call, format!("at most {limit} pages are read per turn; ask again next turn")));
                }
                Some(url) => wanted.push((i, url)),
            }
        }
        let reader = self.agent.reader.clone();
        let reads = futures::future::join_all(wanted.iter().map(|(_, url)| {
            let reader = reader.clone();
            let url = url.clone();
            async move {
                let started = Instant::now();
                (reader.read(&url).await, started)
            }
        }))
        .await;
        let chars = self.agent.settings.page_chars;
        for ((i, asked), (read, started)) in wanted.into_iter().zip(reads) {
            let call = &calls[i];
            let message = match read {
                Ok(page) => {
                    // A page reached by a redirect is the source it was asked by.
                    let id = match self.by_url.get(&asked).copied() {
                        Some(id) => {
                            let known = &mut self.known[id - 1];
                            known.read = true;
                            if known.title.is_empty() {
                                known.title = page.title.clone();
                            }
                            id
                        }
                        None => self.know(&page.url, &page.title, &excerpt(&page.text, 200), true),
                    };
                    self.by_url.entry(page.url.clone()).or_insert(id);
                    let text: String = page.text.chars().take(chars).collect();
                    let more = if page.text.chars().count() > chars { "\n[… the rest of the page was left out]" } else { "" };
                    let description = format!("read {} ({} characters)", page.url, page.text.chars().count());
                    self.tool_event(cycle, "fetch_url", true, &description, json!({"url": page.url, "title": page.title}), started).await?;
                    tool_text(call, format!("[{id}] {} — {}\n\n{text}{more}", page.title, page.url))
                }
                Err(error) => {
                    self.tool_event(cycle, "fetch_url", false, &error, json!({"url": asked}), started).await?;
                    tool_error(call, error)
                }
            };
            results[i] = Some(message);
        }
        Ok(results.into_iter().flatten().collect())
    }

    async fn tool_event(&mut self, cycle: u32, name: &str, ok: bool, description: &str, extra: Value, started: Instant) -> Result<(), AgentError> {
        let status = if ok { "completed" } else { "failed" };
        self.steps.push(json!({"type": "tool", "name": name, "status": status, "cycle": cycle}));
        let mut data = json!({"step": cycle, "cycle": cycle, "name": name, "ok": ok, "status": status, "description": description, "elapsed_ms": ms(started.elapsed())});
        if let (Some(data), Some(extra)) = (data.as_object_mut(), extra.as_object()) {
            data.extend(extra.clone());
        }
        if !ok {
            data["error"] = Value::String(description.to_owned());
        }
        self.ctx.emit(EventKind::Action, data).await?;
        Ok(())
    }

    /// The answer with its citations renumbered to the read sources it cites.
    fn finish(&self, answer: &str) -> Completion {
        let (text, cited) = renumber(answer, |id| self.known.get(id.wrapping_sub(1)).is_some_and(|k| k.read));
        let sources: Vec<Source> = cited
            .iter()
            .map(|id| {
                let k = &self.known[id - 1];
                Source { url: k.url.clone(), title: k.title.clone(), snippet: k.snippet.clone() }
            })
            .collect();
        Completion {
            response: json!({"answer": text.trim(), "steps": self.steps, "sources": sources, "cycles": self.cycles}),
            response_type: ResponseType::Json,
        }
    }
}

/// The sentence a turn begins with, or what its tools do.
fn thought_of(text: &str, calls: &[ToolCall]) -> String {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    if !first.is_empty() && calls.iter().all(|c| c.name != "answer") {
        return first.chars().take(300).collect();
    }
    let said: Vec<String> = calls
        .iter()
        .map(|c| match c.name.as_str() {
            "web_search" => format!("Searching the web for \"{}\"", c.arguments["query"].as_str().unwrap_or_default()),
            "fetch_url" => match (c.arguments["url"].as_str(), c.arguments["id"].as_u64()) {
                (Some(url), _) => format!("Reading {url}"),
                (None, Some(id)) => format!("Reading result [{id}]"),
                _ => "Reading a page".to_owned(),
            },
            "answer" => "Writing the answer".to_owned(),
            other => format!("Calling {other}"),
        })
        .collect();
    if said.is_empty() { "Answering".to_owned() } else { said.join("; ") }
}

/// `text`'s first `n` characters, on one line.
fn excerpt(text: &str, n: usize) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(n).collect()
}

fn tool_text(call: &ToolCall, text: String) -> Message {
    Message::ToolResult { call_id: call.id.clone(), content: vec![Content::Text(text)], is_error: false }
}

fn tool_error(call: &ToolCall, error: String) -> Message {
    Message::ToolResult { call_id: call.id.clone(), content: vec![Content::Text(error)], is_error: true }
}

/// Renumbers the `[n]` citation markers of `answer` 1, 2, 3 … in order of first use, keeping
/// only the ids `citable` allows (others are dropped); the text and the ids cited, in their
/// new order.
fn renumber(answer: &str, citable: impl Fn(usize) -> bool) -> (String, Vec<usize>) {
    let mut order: Vec<usize> = Vec::new();
    let text = rewrite_citations(answer, |id| {
        citable(id).then(|| match order.iter().position(|o| *o == id) {
            Some(n) => n + 1,
            None => {
                order.push(id);
                order.len()
            }
        })
    });
    (text, order)
}

/// The one walk over an answer's citation markers: `[1]`, `[1, 3]`, `[1][3]`, each id through
/// `map` (None drops it; a marker left empty goes, with the space before it). Code (fenced
/// blocks and inline), Markdown links `[text](url)`, and brackets right after a word (`a[1]`)
/// or holding anything but numbers are left as written.
fn rewrite_citations(answer: &str, mut map: impl FnMut(usize) -> Option<usize>) -> String {
    let mut out = String::with_capacity(answer.len());
    let mut fenced = false;
    for line in answer.split_inclusive('\n') {
        if line.trim_start().starts_with("```") || line.trim_start().starts_with("~~~") {
            fenced = !fenced;
            out.push_str(line);
            continue;
        }
        if fenced {
            out.push_str(line);
            continue;
        }
        // Outside fences: inline code spans (between backticks) are kept as they are.
        for (k, part) in line.split('`').enumerate() {
            if k > 0 {
                out.push('`');
            }
            if k % 2 == 1 {
                out.push_str(part);
            } else {
                rewrite_prose(part, &mut map, &mut out);
            }
        }
    }
    out
}

fn rewrite_prose(text: &str, map: &mut impl FnMut(usize) -> Option<usize>, out: &mut String) {
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let before = &rest[..open];
        out.push_str(before);
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else {
            out.push_str(&rest[open..]);
            return;
        };
        let inside = &after[..close];
        let follows_word = out.chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_');
        let is_link = after[close + 1..].starts_with('(');
        let ids: Option<Vec<usize>> = inside.split(',').map(|p| p.trim().parse::<usize>().ok()).collect();
        match ids {
            Some(ids) if !ids.is_empty() && !is_link && !follows_word => {
                let kept: Vec<String> = ids.into_iter().filter_map(&mut *map).map(|n| n.to_string()).collect();
                if !kept.is_empty() {
                    out.push_str(&format!("[{}]", kept.join(", ")));
                } else if out.ends_with(' ') {
                    out.pop();
                }
            }
            _ => {
                out.push('[');
                out.push_str(inside);
                out.push(']');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_are_renumbered_to_read_sources_only() {
        let read = |id: usize| id == 4 || id == 7;
        let (text, cited) = renumber("Rust is fast [7]. It is safe [2, 4]. See [the docs](https://x.org) [4][9].", read);
        assert_eq!(text, "Rust is fast [1]. It is safe [2]. See [the docs](https://x.org) [2].");
        assert_eq!(cited, vec![7, 4]);
        let (text, cited) = renumber("Nothing read [3].", read);
        assert_eq!((text.as_str(), cited.len()), ("Nothing read.", 0));
        assert_eq!(renumber("an array a[i] stays", read).0, "an array a[i] stays");
        let code = "Use it [7]:\n```rust\nlet v = [1, 2];\nv[1]\n```\nand `x[4]` or y[4] stay [4].";
        assert_eq!(renumber(code, read).0, "Use it [1]:\n```rust\nlet v = [1, 2];\nv[1]\n```\nand `x[4]` or y[4] stay [2].");
    }

    #[test]
    fn earlier_answers_are_numbered_conversation_wide() {
        let ids = [5, 2];
        let text = rewrite_citations("A [1], B [2], C [3].", |n| n.checked_sub(1).and_then(|i| ids.get(i)).copied());
        assert_eq!(text, "A [5], B [2], C.");
    }

    #[test]
    fn a_turn_reads_as_its_first_sentence_or_its_tools() {
        let call = |name: &str, args: Value| ToolCall { id: "c".into(), name: name.into(), arguments: args };
        assert_eq!(thought_of("I will look for benchmarks.\nmore", &[call("web_search", json!({"query": "q"}))]), "I will look for benchmarks.");
        assert_eq!(thought_of("", &[call("web_search", json!({"query": "rust"})), call("fetch_url", json!({"id": 2}))]),
            "Searching the web for \"rust\"; Reading result [2]");
    }
}
