//! `agentd-bench agent`: the browser agent end to end. The release `agentd serve` runs as a
//! child process (so its memory, and the Chromium processes under it, are the server's alone)
//! with its built-in browser agent on the fixture site, and its LLM is a scripted server in
//! this process that answers at once, like a model would (element indices read from the
//! page in the prompt). The time from one LLM reply to the session's next LLM request is then
//! agentd's own: act, record the events, observe, build the prompt, send it. Figures:
//! 1. time per step (reply → next request) p50/p95, single-action and multi-action steps, on
//!    a task (search the product list, open a product, go back, fill a form in two chained
//!    steps, set three controls in one, back to the list, add to the cart, done), one session
//!    at a time;
//! 2. POST /v1/sessions → first LLM request with the browser warm, and process start of
//!    `agentd serve` → first LLM request of a session posted as soon as /healthz answers;
//! 3. prompt tokens per step all-in (system + tool schemas + step message; chars/4, and the
//!    scripted server's usage), per page, and the tool schemas alone;
//! 4. PSS per extra session with sessions held mid-task (waiting on `request_user_input`) at
//!    5/10/20, and 20 concurrent sessions running the whole task.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use agentd_testllm::{Recorded, Reply, ScriptedLlm};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::KEY;
use crate::browser::process_tree_memory;

/// Whether a reply makes one browser action, several, or finishes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Single,
    Multi,
    Finish,
}

/// One LLM request of the task: the page it is made on, and what the reply does there (the
/// calls themselves are in [`task_reply`]).
struct TaskStep {
    page: &'static str,
    does: &'static str,
    kind: Kind,
    /// The reply's action loads another page (the browser waits for its load event).
    loads_page: bool,
}

const fn step(page: &'static str, does: &'static str, kind: Kind, loads_page: bool) -> TaskStep {
    TaskStep { page, does, kind, loads_page }
}

/// The task every session runs, one entry per LLM request.
const TASK: [TaskStep; 11] = [
    step("products (203 elements)", "type in search", Kind::Single, false),
    step("products, searched", "click a product", Kind::Single, true),
    step("product page", "click back", Kind::Single, true),
    step("products again", "navigate", Kind::Single, true),
    step("form", "type, type, check", Kind::Multi, false),
    step("form, half filled", "select, type, check", Kind::Multi, false),
    step("form, filled", "navigate", Kind::Single, true),
    step("controls", "select, check, click", Kind::Multi, false),
    step("controls, set", "navigate", Kind::Single, true),
    step("products, full history", "click add to cart", Kind::Single, false),
    step("products, in the cart", "done", Kind::Finish, false),
];

const GOAL: &str = "Find the red kettle and open it, fill in the order form (email, a message, small size, France, \
phone, no newsletter), set the controls (medium size, accept the terms, dark mode), then put the kettle in the cart";

/// Sessions run one at a time for the per-step figures.
const SEQUENTIAL_RUNS: usize = 12;
/// Sessions for POST → first request.
const FIRST_REQUEST_RUNS: usize = 20;
/// Process starts for start → first request.
const COLD_RUNS: usize = 5;
/// Sessions running the task at once.
const CONCURRENT: usize = 20;

/// The index of the element whose line in the page state contains `needle`.
fn index_of(prompt: &str, needle: &str) -> Result<u64, String> {
    let page = prompt.split("\nCurrent page:\n").nth(1).unwrap_or(prompt);
    page.lines()
        .filter(|l| l.starts_with('[') && l.contains(needle))
        .find_map(|l| l[1..].split(']').next()?.parse().ok())
        .ok_or_else(|| format!("no element {needle} on the page"))
}

/// The line of the element `needle` in the page state, to check what an action did.
fn element_line<'a>(prompt: &'a str, needle: &str) -> &'a str {
    prompt.lines().find(|l| l.starts_with('[') && l.contains(needle)).unwrap_or_default()
}

fn call(name: &str, arguments: Value) -> (String, Value) {
    (name.to_owned(), arguments)
}

/// The reply to request `step` of the task, read off the prompt as a model would.
fn task_reply(step: usize, prompt: &str, site: &str) -> Result<Reply, String> {
    let i = |needle: &str| index_of(prompt, needle);
    let (thought, calls) = match step {
        0 => ("search the list for kettles", vec![call("type", json!({"index": i("\"Search products\"")?, "text": "kettle"}))]),
        1 => ("open the red kettle", vec![call("click", json!({"index": i("\"Red Kettle\"")?}))]),
        2 => ("back to the list", vec![call("click", json!({"index": i("\"Back to all products\"")?}))]),
        3 => ("open the order form", vec![call("navigate", json!({"url": format!("{site}form")}))]),
        4 => (
            "fill in email, message and size",
            vec![
                call("type", json!({"index": i("\"Email address\"")?, "text": "ada@example.org"})),
                call("type", json!({"index": i("\"Your message\"")?, "text": "Please deliver the red kettle on Monday."})),
                call("check", json!({"index": i("radio \"Small\"")?, "checked": true})),
            ],
        ),
        5 => (
            "country, phone, no newsletter",
            vec![
                call("select", json!({"index": i("\"Country\"")?, "option": "France"})),
                call("type", json!({"index": i("\"Phone\"")?, "text": "+33 1 23 45 67 89"})),
                call("check", json!({"index": i("\"Subscribe\"")?, "checked": false})),
            ],
        ),
        6 => {
            if !element_line(prompt, "\"Email address\"").contains("ada@example.org") {
                return Err("the email typed in the form is not on the page".into());
            }
            ("open the settings", vec![call("navigate", json!({"url": format!("{site}controls")}))])
        }
        7 => (
            "size, terms and dark mode",
            vec![
                call("select", json!({"index": i("\"Size\"")?, "option": "Medium"})),
                call("check", json!({"index": i("\"Accept terms\"")?, "checked": true})),
                call("click", json!({"index": i("\"Dark mode\"")?})),
            ],
        ),
        8 => {
            let terms = element_line(prompt, "\"Accept terms\"");
            if !terms.contains(" checked") {
                return Err(format!("the terms are not checked: {terms}"));
            }
            ("back to the list", vec![call("navigate", json!({"url": format!("{site}products")}))])
        }
        9 => ("put the kettle in the cart", vec![call("click", json!({"index": i("\"Add Red Kettle to cart\"")?}))]),
        _ => {
            if !prompt.contains("\"Cart (1)\"") {
                return Err("the cart does not hold the kettle".into());
            }
            ("all done", vec![call("done", json!({"response": "The form is filled in, the controls set and the kettle in the cart."}))])
        }
    };
    Ok(Reply::TextAndToolCalls(format!("Thought: {thought}\nMemory: task step {}\nNext: {thought}", step + 1), calls))
}

/// The session's tag, written in its goal as `[bench TAG]`: `task N`, `hold N AT` (waits for
/// a person at request AT), or `first N` (done at the first request).
fn tag_of(prompt: &str) -> Option<String> {
    let goal = prompt.lines().find(|l| l.starts_with("Goal: "))?;
    let start = goal.find("[bench ")? + "[bench ".len();
    let end = goal[start..].find(']')? + start;
    Some(goal[start..end].to_owned())
}

/// The scripted model: which request of its session each request is (by the session's tag),
/// the answer to it, and whatever went off the script.
#[derive(Default)]
struct Model {
    site: String,
    /// Per tag: requests so far, and when the first one arrived.
    seen: Mutex<HashMap<String, (usize, Instant)>>,
    problems: Mutex<Vec<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Model {
    fn reply(&self, request: &Recorded) -> Reply {
        let prompt = request.text();
        let Some(tag) = tag_of(&prompt) else {
            lock(&self.problems).push("a request without a bench tag".into());
            return Reply::error(400, "no bench tag");
        };
        let step = {
            let mut seen = lock(&self.seen);
            let entry = seen.entry(tag.clone()).or_insert((0, request.received_at));
            entry.0 += 1;
            entry.0 - 1
        };
        if prompt.lines().any(|l| l.contains(". FAILED: ") || l.contains("more actions of this step skipped")) {
            lock(&self.problems).push(format!("[{tag}] request {step}: an action failed: {prompt}"));
        }
        let words: Vec<&str> = tag.split(' ').collect();
        match words.as_slice() {
            ["first", ..] => Reply::tool_call("done", json!({"response": "ok"})),
            ["hold", _, at] if at.parse() == Ok(step) => Reply::TextAndToolCalls(
                "Thought: the order needs a delivery date\nMemory: waiting for the user\nNext: ask for the date".into(),
                vec![call("request_user_input", json!({"field_name": "delivery_date", "reason": "the order needs a delivery date"}))],
            ),
            _ => task_reply(step, &prompt, &self.site).unwrap_or_else(|error| {
                lock(&self.problems).push(format!("[{tag}] request {step}: {error}"));
                Reply::tool_call("done", json!({"response": format!("off script: {error}")}))
            }),
        }
    }

    /// Requests made by the session tagged `tag`, and when its first one arrived.
    fn seen(&self, tag: &str) -> Option<(usize, Instant)> {
        lock(&self.seen).get(tag).copied()
    }

    fn take_problems(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.problems))
    }
}

/// A running `agentd serve`, stopped gracefully (SIGTERM) so that it closes its Chromium.
struct Server {
    child: tokio::process::Child,
    pid: u32,
    base: String,
    spawned: Instant,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(exe: &Path, llm: &ScriptedLlm, site: &str) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        let spawned = Instant::now();
        let mut child = crate::serve_command(exe, dir.path(), llm)
            // Room for 20 sessions at once (the defaults are 16 sessions, 20 contexts).
            .env("AGENTD_MAX_CONCURRENT_SESSIONS", "32")
            .env("AGENTD_BROWSER_MAX_CONTEXTS", "32")
            // The fixture site is on loopback: the egress policy lets the browser reach exactly it.
            .env("AGENTD_EGRESS_ALLOW", crate::browser::fixture_allow(site))
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let pid = child.id().context("the server's pid")?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base = crate::listening_address(&mut lines).await?;
        // Keep reading: a closed pipe would make the server's next print fail.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let base = base.context("agentd serve did not say where it listens")?;
        Ok(Server { child, pid, base, spawned, _dir: dir })
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        let family = descendants(self.pid);
        // SAFETY: a signal to our own child, by its pid.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await.is_err() {
            self.child.kill().await?;
        }
        // Whatever of its Chromium outlived it (it closes its browser on SIGTERM).
        for pid in family {
            if Path::new(&format!("/proc/{pid}")).exists() {
                // SAFETY: as above, a process this bench started (through the server).
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // On an early return the server still shuts down, and closes its browser.
        if self.child.id().is_some() {
            // SAFETY: a signal to our own child, by its pid.
            unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        }
    }
}

fn descendants(root: u32) -> Vec<u32> {
    let mut family = vec![root];
    let mut changed = true;
    while changed {
        changed = false;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            if family.contains(&pid) {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let ppid = stat.rsplit_once(") ").and_then(|(_, r)| r.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
            if ppid.is_some_and(|p| family.contains(&p)) {
                family.push(pid);
                changed = true;
            }
        }
    }
    family.remove(0);
    family
}

/// A session the bench created.
struct Created {
    id: String,
    tag: String,
    posted: Instant,
    answered: Instant,
}

/// The bench's client side: the fixture site, the scripted model and HTTP.
struct Bench {
    site: String,
    llm: ScriptedLlm,
    model: Arc<Model>,
    http: reqwest::Client,
}

impl Bench {
    /// Makes sure `n` more requests find a scripted answer (one responder per request).
    fn arm(&self, n: usize) {
        for _ in 0..n {
            let model = self.model.clone();
            self.llm.push_with(move |request| model.reply(request));
        }
    }

    async fn create(&self, server: &Server, tag: &str, page: &str) -> anyhow::Result<Created> {
        let posted = Instant::now();
        let response = self
            .http
            .post(format!("{}/v1/sessions", server.base))
            .bearer_auth(KEY)
            .json(&json!({"goal": format!("{GOAL} [bench {tag}]"), "start_url": format!("{}{page}", self.site), "timeout_seconds": 600}))
            .send()
            .await?;
        let answered = Instant::now();
        let body: Value = response.error_for_status()?.json().await?;
        let id = body["id"].as_str().context("a session id")?.to_owned();
        Ok(Created { id, tag: tag.to_owned(), posted, answered })
    }

    async fn session(&self, server: &Server, id: &str) -> anyhow::Result<Value> {
        Ok(self.http.get(format!("{}/v1/sessions/{id}", server.base)).bearer_auth(KEY).send().await?.json().await?)
    }

    /// Polls (every `every`, for at most a minute) until the session's status is one of `statuses`.
    async fn wait_for(&self, server: &Server, id: &str, statuses: &[&str], every: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let session = self.session(server, id).await?;
            let status = session["status"].as_str().unwrap_or_default();
            if statuses.contains(&status) {
                return Ok(session);
            }
            if session["ended_at"].is_string() || Instant::now() > deadline {
                bail!("session {id} is {status}, waited for {statuses:?}: {session}");
            }
            tokio::time::sleep(every).await;
        }
    }

    async fn events(&self, server: &Server, id: &str) -> anyhow::Result<Vec<Value>> {
        let page: Value = self
            .http
            .get(format!("{}/v1/sessions/{id}/events?limit=1000", server.base))
            .bearer_auth(KEY)
            .send()
            .await?
            .json()
            .await?;
        Ok(page["data"].as_array().cloned().unwrap_or_default())
    }

    /// Waits (in this process, every millisecond) for the first LLM request of `tag`.
    async fn first_request(&self, tag: &str) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((_, at)) = self.model.seen(tag) {
                return Ok(at);
            }
            if Instant::now() > deadline {
                bail!("no LLM request from session {tag}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The browser launched and the warm contexts made: one session run through, then a pause.
    async fn warm_up(&self, server: &Server) -> anyhow::Result<()> {
        self.arm(1);
        let created = self.create(server, "first warm-up", "products").await?;
        self.wait_for(server, &created.id, &["completed"], Duration::from_millis(20)).await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        self.llm.take_requests();
        Ok(())
    }

    /// Runs `n` task sessions (all at once, or one after another with a pause between them);
    /// returns the sessions, their requests, how many completed and the wall time.
    async fn run_tasks(&self, server: &Server, prefix: &str, n: usize, at_once: bool) -> anyhow::Result<TaskRun> {
        self.arm(n * TASK.len());
        self.llm.take_requests();
        let started = Instant::now();
        let mut sessions = Vec::new();
        if at_once {
            let tags: Vec<String> = (0..n).map(|i| format!("task {prefix}{i}")).collect();
            let posts = tags.iter().map(|tag| self.create(server, tag, "products"));
            for created in futures::future::join_all(posts).await {
                sessions.push(created?);
            }
            self.wait_idle(server).await?;
        } else {
            for i in 0..n {
                let created = self.create(server, &format!("task {prefix}{i}"), "products").await?;
                self.wait_for(server, &created.id, &["completed", "failed", "stopped", "timed_out"], Duration::from_millis(20)).await?;
                sessions.push(created);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        let wall = started.elapsed();
        let mut completed = 0;
        let mut events = HashMap::new();
        for s in &sessions {
            if self.session(server, &s.id).await?["status"] == "completed" {
                completed += 1;
            }
            events.insert(s.tag.clone(), self.events(server, &s.id).await?);
        }
        Ok(TaskRun { requests: self.llm.take_requests(), events, completed, sessions: sessions.len(), wall })
    }

    /// Waits until no session is live (polled every 25 ms: light beside 20 sessions).
    async fn wait_idle(&self, server: &Server) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let page: Value = self
                .http
                .get(format!("{}/v1/sessions?status=queued,running,paused,waiting&limit=1", server.base))
                .bearer_auth(KEY)
                .send()
                .await?
                .json()
                .await?;
            if page["data"].as_array().is_some_and(Vec::is_empty) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("sessions still live after 5 minutes");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// What a run of task sessions left to read.
struct TaskRun {
    requests: Vec<Recorded>,
    /// Each session's events, by tag.
    events: HashMap<String, Vec<Value>>,
    completed: usize,
    sessions: usize,
    wall: Duration,
}

/// One step's time (LLM reply → next LLM request), in ms, and what it is made of.
struct StepTime {
    /// Which request of the task the reply answered.
    task_step: usize,
    total: f64,
    /// The reply's actions, as the browser timed them.
    acting: f64,
    /// The observe of the next page.
    observe: f64,
}

impl StepTime {
    /// The rest: agentd's own work around the browser (events, prompt, the LLM client, the
    /// safety and page-moved checks).
    fn rest(&self) -> f64 {
        self.total - self.acting - self.observe
    }
}

/// Step times of a run.
#[derive(Default)]
struct StepTimes {
    steps: Vec<StepTime>,
    /// Sessions whose requests followed the task exactly.
    followed: usize,
}

impl StepTimes {
    fn select(&self, keep: impl Fn(&TaskStep) -> bool, value: impl Fn(&StepTime) -> f64) -> Vec<f64> {
        self.steps.iter().filter(|s| keep(&TASK[s.task_step])).map(value).collect()
    }

    fn single(&self) -> Vec<f64> {
        self.select(|t| t.kind == Kind::Single, |s| s.total)
    }

    fn multi(&self) -> Vec<f64> {
        self.select(|t| t.kind == Kind::Multi, |s| s.total)
    }
}

impl TaskRun {
    /// Each task session's requests, in order, by tag.
    fn by_session(&self) -> HashMap<String, Vec<&Recorded>> {
        let mut sessions: HashMap<String, Vec<&Recorded>> = HashMap::new();
        for r in &self.requests {
            if let Some(tag) = tag_of(&r.text()).filter(|t| t.starts_with("task ")) {
                sessions.entry(tag).or_default().push(r);
            }
        }
        for requests in sessions.values_mut() {
            requests.sort_by_key(|r| r.received_at);
        }
        sessions
    }

    fn step_times(&self) -> StepTimes {
        let mut times = StepTimes::default();
        for (tag, requests) in self.by_session() {
            if requests.len() != TASK.len() {
                continue;
            }
            times.followed += 1;
            let events = self.events.get(&tag).map(Vec::as_slice).unwrap_or_default();
            // Request i is made in step i + 1; its reply's actions carry that step number, and
            // the next request follows the observe of step i + 2.
            let of_step = |kind: &str, step: usize, field: &str| -> f64 {
                events
                    .iter()
                    .filter(|e| e["type"] == kind && e["data"]["step"] == json!(step))
                    .filter_map(|e| e["data"][field].as_f64())
                    .sum()
            };
            for (i, pair) in requests.windows(2).enumerate() {
                times.steps.push(StepTime {
                    task_step: i,
                    total: pair[1].received_at.duration_since(pair[0].received_at).as_secs_f64() * 1000.0,
                    acting: of_step("action", i + 1, "elapsed_ms"),
                    observe: of_step("thought", i + 2, "observe_ms"),
                });
            }
        }
        times
    }
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut sorted = v.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    crate::percentile(&sorted, p)
}

fn p50_p95(v: &[f64]) -> String {
    format!("p50 {:.1} ms, p95 {:.1} ms (n={})", percentile(v, 0.5), percentile(v, 0.95), v.len())
}

/// chars / 4, as the page-state budget counts tokens.
fn tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

/// The parts of a request's prompt, in tokens (chars / 4).
struct PromptSize {
    system: usize,
    tools: usize,
    message: usize,
    page: usize,
}

impl PromptSize {
    fn of(request: &Recorded) -> PromptSize {
        let messages = request.body["messages"].as_array().cloned().unwrap_or_default();
        let text_of = |role: &str| -> String {
            messages
                .iter()
                .filter(|m| m["role"] == role)
                .map(|m| match &m["content"] {
                    Value::String(text) => text.clone(),
                    Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
                    _ => String::new(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let message = text_of("user");
        PromptSize {
            system: tokens(&text_of("system")),
            tools: tokens(&request.body["tools"].to_string()),
            message: tokens(&message),
            page: message.split("\nCurrent page:\n").nth(1).map_or(0, tokens),
        }
    }

    fn all_in(&self) -> usize {
        self.system + self.tools + self.message
    }
}

/// The usage the scripted server reported for request `i` of a session (from its `thought` event).
fn usage_of(events: &[Value], i: usize) -> Option<u64> {
    events
        .iter()
        .find(|e| e["type"] == "thought" && e["data"]["step"] == json!(i + 1))
        .and_then(|e| e["data"]["input_tokens"].as_u64())
}

/// The figures the summary table needs.
#[derive(Default)]
struct Summary {
    single: Vec<f64>,
    multi: Vec<f64>,
    rest: Vec<f64>,
    first_warm: Vec<f64>,
    cold: Vec<f64>,
    /// All-in (chars / 4), the scripted server's usage, and where.
    worst_tokens: (usize, u64, String),
    tools: usize,
    /// Per held-session count: PSS per session beyond the first, and per session over idle.
    pss_per_session: Vec<(usize, f64, f64)>,
    concurrent: Option<Concurrent>,
}

/// The figures of sessions running the task at once.
struct Concurrent {
    wall: f64,
    single: Vec<f64>,
    multi: Vec<f64>,
    completed: usize,
    sessions: usize,
}

/// Runs every figure and prints them, then the summary table.
pub async fn figures() -> anyhow::Result<()> {
    let exe = std::env::current_exe()?.with_file_name("agentd");
    if !exe.exists() {
        bail!("{} is not built: run `cargo build --release -p agentd` first", exe.display());
    }
    let site = agentd_testsite::serve().await;
    let llm = ScriptedLlm::start().await;
    let model = Arc::new(Model { site: site.clone(), ..Model::default() });
    let bench = Bench { site, llm, model, http: reqwest::Client::builder().pool_max_idle_per_host(64).build()? };
    let mut summary = Summary::default();
    println!("agent: `agentd serve` ({}) with a scripted LLM answering at once, fixture site on loopback", exe.display());

    let server = Server::start(&exe, &bench.llm, &bench.site).await?;
    bench.warm_up(&server).await?;
    steps_one_at_a_time(&bench, &server, &mut summary).await?;
    first_request_warm(&bench, &server, &mut summary).await?;
    tokens_per_fixture_page(&bench, &server, &mut summary).await?;
    server.stop().await?;

    first_request_from_process_start(&bench, &exe, &mut summary).await?;

    if std::env::var_os("BENCH_SKIP_MEMORY").is_none() {
        let server = Server::start(&exe, &bench.llm, &bench.site).await?;
        bench.warm_up(&server).await?;
        memory_held_sessions(&bench, &server, &mut summary).await?;
        server.stop().await?;
    }

    let server = Server::start(&exe, &bench.llm, &bench.site).await?;
    bench.warm_up(&server).await?;
    concurrent_sessions(&bench, &server, &mut summary).await?;
    server.stop().await?;

    print_summary(&summary);
    Ok(())
}

fn report_problems(bench: &Bench) {
    for problem in bench.model.take_problems() {
        println!("agent:   OFF SCRIPT: {}", problem.chars().take(600).collect::<String>());
    }
}

/// Figures 1 and 3 on the task: step times on an idle node, and prompt tokens per page.
async fn steps_one_at_a_time(bench: &Bench, server: &Server, summary: &mut Summary) -> anyhow::Result<()> {
    let run = bench.run_tasks(server, "seq", SEQUENTIAL_RUNS, false).await?;
    report_problems(bench);
    let times = run.step_times();
    println!(
        "agent: the task, one session at a time (idle node): {}/{} completed, {} followed the script ({} LLM requests each)",
        run.completed,
        run.sessions,
        times.followed,
        TASK.len()
    );
    let single = times.single();
    let multi = times.multi();
    println!("agent: time per step, LLM reply → next LLM request (agentd's own):");
    println!("agent:   single-action steps: {}", p50_p95(&single));
    println!(
        "agent:     on the page (no page load): {}",
        p50_p95(&times.select(|t| t.kind == Kind::Single && !t.loads_page, |s| s.total))
    );
    println!(
        "agent:     that load a page (click a link, navigate): {}",
        p50_p95(&times.select(|t| t.kind == Kind::Single && t.loads_page, |s| s.total))
    );
    println!("agent:   multi-action steps (3 chained actions on one page): {}", p50_p95(&multi));
    println!("agent:   per step, p50 ms: step = browser acting + observing the next page + the rest (agentd's own work)");
    println!("agent:   {:<27} {:<21} {:>6} {:>7} {:>8} {:>5}", "task step: page", "reply", "step", "acting", "observe", "rest");
    for (i, task) in TASK.iter().enumerate().filter(|(_, t)| t.kind != Kind::Finish) {
        let of = |value: fn(&StepTime) -> f64| {
            let v: Vec<f64> = times.steps.iter().filter(|s| s.task_step == i).map(value).collect();
            percentile(&v, 0.5)
        };
        println!(
            "agent:   {:<27} {:<21} {:>6.1} {:>7.1} {:>8.1} {:>5.1}",
            format!("{}. {}", i + 1, task.page),
            task.does,
            of(|s| s.total),
            of(|s| s.acting),
            of(|s| s.observe),
            of(StepTime::rest)
        );
    }
    let rest = times.select(|_| true, StepTime::rest);
    println!("agent:   the rest, every step: {}", p50_p95(&rest));
    summary.single = single;
    summary.multi = multi;
    summary.rest = rest;

    // Prompt sizes per request of the task (largest over the sessions: history grows alike).
    let sessions = run.by_session();
    let mut rows: Vec<Option<(PromptSize, Option<u64>, &Recorded)>> = (0..TASK.len()).map(|_| None).collect();
    for (tag, requests) in &sessions {
        let events = run.events.get(tag).map(Vec::as_slice).unwrap_or_default();
        for (i, request) in requests.iter().enumerate().take(TASK.len()) {
            let size = PromptSize::of(request);
            if rows[i].as_ref().is_none_or(|(s, _, _)| s.all_in() < size.all_in()) {
                rows[i] = Some((size, usage_of(events, i), request));
            }
        }
    }
    if let Some((first, _, _)) = rows.first().and_then(Option::as_ref) {
        println!("agent: prompt per step (tokens = chars/4): system prompt {}, tool schemas {} (17 tools, as sent)", first.system, first.tools);
        summary.tools = first.tools;
    }
    println!("agent:   {:<26} {:>6} {:>8} {:>7} {:>6}", "task step: page", "page", "message", "all-in", "usage");
    let mut worst: Option<&Recorded> = None;
    for (i, row) in rows.iter().enumerate() {
        if let Some((size, usage, request)) = row {
            let shown = usage.map_or("-".to_owned(), |u| u.to_string());
            println!("agent:   {:<26} {:>6} {:>8} {:>7} {:>6}", format!("{}. {}", i + 1, TASK[i].page), size.page, size.message, size.all_in(), shown);
            if size.all_in() > summary.worst_tokens.0 {
                summary.worst_tokens = (size.all_in(), usage.unwrap_or_default(), TASK[i].page.to_owned());
                worst = Some(request);
            }
        }
    }
    println!("agent:   (usage: the scripted server's count, request body bytes / 4: JSON quoting and escapes included)");
    if let Some(request) = worst.filter(|_| std::env::var_os("BENCH_SHOW_PROMPT").is_some()) {
        println!("agent: the largest prompt of the task, as the model reads it:\n{}", request.text());
    }
    Ok(())
}

/// Figure 2a: POST /v1/sessions → the session's first LLM request, the browser warm.
async fn first_request_warm(bench: &Bench, server: &Server, summary: &mut Summary) -> anyhow::Result<()> {
    let (mut to_first, mut to_created, mut opening, mut observing) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..FIRST_REQUEST_RUNS {
        // The warm reserve refills after a session's first action: give it the time to.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        bench.arm(1);
        let created = bench.create(server, &format!("first warm {i}"), "products").await?;
        let first = bench.first_request(&created.tag).await?;
        to_first.push(first.duration_since(created.posted).as_secs_f64() * 1000.0);
        to_created.push(created.answered.duration_since(created.posted).as_secs_f64() * 1000.0);
        bench.wait_for(server, &created.id, &["completed"], Duration::from_millis(20)).await?;
        // The start page is opened before the first step (step 0), observed in step 1.
        let events = bench.events(server, &created.id).await?;
        let field = |kind: &str, step: u64, name: &str| {
            events.iter().find(|e| e["type"] == kind && e["data"]["step"] == json!(step)).and_then(|e| e["data"][name].as_f64())
        };
        opening.extend(field("action", 0, "elapsed_ms"));
        observing.extend(field("thought", 1, "observe_ms"));
    }
    bench.llm.take_requests();
    report_problems(bench);
    println!("agent: POST /v1/sessions → first LLM request, browser warm (product list, 2 warm contexts): {}", p50_p95(&to_first));
    println!("agent:   of which POST → 201: {}", p50_p95(&to_created));
    println!("agent:   of which opening the start page: {}", p50_p95(&opening));
    println!("agent:   of which observing it: {}", p50_p95(&observing));
    summary.first_warm = to_first;
    Ok(())
}

/// Figure 3 on every fixture page: the first request of a session starting there.
async fn tokens_per_fixture_page(bench: &Bench, server: &Server, summary: &mut Summary) -> anyhow::Result<()> {
    println!("agent: first request on each fixture page (tokens = chars/4):");
    println!("agent:   {:<12} {:>6} {:>8} {:>7} {:>6}", "page", "page", "message", "all-in", "usage");
    for page in agentd_testsite::MAIN_PAGES {
        bench.arm(1);
        bench.llm.take_requests();
        let created = bench.create(server, &format!("first page {page}"), page).await?;
        bench.wait_for(server, &created.id, &["completed"], Duration::from_millis(20)).await?;
        let requests = bench.llm.take_requests();
        let request = requests.first().context("no LLM request")?;
        let size = PromptSize::of(request);
        let usage = usage_of(&bench.events(server, &created.id).await?, 0).map_or("-".to_owned(), |u| u.to_string());
        println!("agent:   {page:<12} {:>6} {:>8} {:>7} {:>6}", size.page, size.message, size.all_in(), usage);
        if size.all_in() > summary.worst_tokens.0 {
            summary.worst_tokens = (size.all_in(), usage.parse().unwrap_or_default(), format!("{page} (first step)"));
        }
    }
    report_problems(bench);
    Ok(())
}

/// Figure 2b: process start of `agentd serve` → first LLM request of a session posted as soon
/// as /healthz answers (the browser launches in the background meanwhile).
async fn first_request_from_process_start(bench: &Bench, exe: &Path, summary: &mut Summary) -> anyhow::Result<()> {
    let (mut to_first, mut to_health) = (Vec::new(), Vec::new());
    for i in 0..COLD_RUNS {
        let server = Server::start(exe, &bench.llm, &bench.site).await?;
        loop {
            if let Ok(r) = bench.http.get(format!("{}/healthz", server.base)).send().await
                && r.status().is_success()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        to_health.push(server.spawned.elapsed().as_secs_f64() * 1000.0);
        bench.arm(1);
        let created = bench.create(&server, &format!("first cold {i}"), "products").await?;
        let first = bench.first_request(&created.tag).await?;
        to_first.push(first.duration_since(server.spawned).as_secs_f64() * 1000.0);
        bench.wait_for(&server, &created.id, &["completed"], Duration::from_millis(20)).await?;
        server.stop().await?;
        bench.llm.take_requests();
    }
    report_problems(bench);
    println!("agent: process start of `agentd serve` → first LLM request (browser launched at start): {}", p50_p95(&to_first));
    println!("agent:   of which start → /healthz answers: {}", p50_p95(&to_health));
    summary.cold = to_first;
    Ok(())
}

/// Figure 4a: PSS of the server and its Chromium with sessions held mid-task.
async fn memory_held_sessions(bench: &Bench, server: &Server, summary: &mut Summary) -> anyhow::Result<()> {
    let (rss0, pss0) = process_tree_memory(server.pid, true);
    println!("agent: memory (agentd serve + its Chromium), idle with 2 warm contexts: RSS {rss0:.0} MB, PSS {pss0:.0} MB");
    let mut held: Vec<Created> = Vec::new();
    let mut first = 0.0;
    for n in [1usize, 5, 10, 20] {
        while held.len() < n {
            // Held at different points of the task: the searched list, the product page, the
            // form, the controls.
            let at = [1, 2, 5, 8][held.len() % 4];
            bench.arm(at + 1);
            held.push(bench.create(server, &format!("hold {} {at}", held.len()), "products").await?);
        }
        for s in &held {
            bench.wait_for(server, &s.id, &["waiting"], Duration::from_millis(50)).await?;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (rss, pss) = process_tree_memory(server.pid, true);
        let beyond = if n == 1 {
            first = pss;
            String::new()
        } else {
            let per = (pss - first) / (n - 1) as f64;
            summary.pss_per_session.push((n, per, (pss - pss0) / n as f64));
            format!(", {per:.0} MB per session beyond the first")
        };
        println!(
            "agent:   {n:>2} sessions waiting mid-task: RSS {rss:.0} MB, PSS {pss:.0} MB (+{:.0} MB, {:.0} MB/session{beyond})",
            pss - pss0,
            (pss - pss0) / n as f64
        );
    }
    for s in &held {
        bench.http.post(format!("{}/v1/sessions/{}/stop", server.base, s.id)).bearer_auth(KEY).send().await?.error_for_status()?;
    }
    bench.wait_idle(server).await?;
    bench.llm.take_requests();
    report_problems(bench);
    Ok(())
}

/// Figure 4b: 20 sessions running the whole task at once.
async fn concurrent_sessions(bench: &Bench, server: &Server, summary: &mut Summary) -> anyhow::Result<()> {
    let run = bench.run_tasks(server, "load", CONCURRENT, true).await?;
    report_problems(bench);
    let times = run.step_times();
    let wall = run.wall.as_secs_f64();
    println!(
        "agent: {CONCURRENT} concurrent sessions running the task: {}/{} completed, {} followed the script, all done in {wall:.2} s",
        run.completed, run.sessions, times.followed
    );
    println!("agent:   single-action steps under that load: {}", p50_p95(&times.single()));
    println!("agent:   multi-action steps under that load: {}", p50_p95(&times.multi()));
    println!(
        "agent:   of which p50: browser acting {:.0} ms, observing {:.0} ms, the rest {:.0} ms",
        percentile(&times.select(|_| true, |s| s.acting), 0.5),
        percentile(&times.select(|_| true, |s| s.observe), 0.5),
        percentile(&times.select(|_| true, StepTime::rest), 0.5)
    );
    summary.concurrent = Some(Concurrent { wall, single: times.single(), multi: times.multi(), completed: run.completed, sessions: run.sessions });
    Ok(())
}

fn print_summary(s: &Summary) {
    let p = |v: &[f64], q: f64| percentile(v, q);
    let secs = |ms: f64| if ms >= 1000.0 { format!("{:.2} s", ms / 1000.0) } else { format!("{ms:.0} ms") };
    let met = |ok: bool| if ok { "yes" } else { "NO" };
    println!();
    println!("| figure | agentd | browser-use 0.13.14 | target | met |");
    println!("|---|---|---|---|---|");
    println!(
        "| single-action step, agentd's own time | p50 {:.0} ms, p95 {:.0} ms | 640 ms p50 | ≤ 64 ms p50 | {} |",
        p(&s.single, 0.5),
        p(&s.single, 0.95),
        met(p(&s.single, 0.5) <= 64.0)
    );
    println!("| multi-action step (3 actions) | p50 {:.0} ms, p95 {:.0} ms | 960 ms p50 | | |", p(&s.multi, 0.5), p(&s.multi, 0.95));
    println!(
        "| of a step, agentd's own work beside the browser | p50 {:.1} ms, p95 {:.1} ms | | | |",
        p(&s.rest, 0.5),
        p(&s.rest, 0.95)
    );
    println!(
        "| POST → first LLM request, browser warm | p50 {}, p95 {} | 5.6 s | ≤ 0.5 s | {} |",
        secs(p(&s.first_warm, 0.5)),
        secs(p(&s.first_warm, 0.95)),
        met(p(&s.first_warm, 0.5) <= 500.0)
    );
    println!("| process start → first LLM request | p50 {}, max {} | 5.6 s | | |", secs(p(&s.cold, 0.5)), secs(p(&s.cold, 1.0)));
    let (chars, usage, page) = &s.worst_tokens;
    println!(
        "| prompt tokens per step, all-in, worst page | {chars} (chars/4), {usage} (usage) on {page} | ~7–10k + 4.2k schema | ≤ 2.5k | {} |",
        met(*chars <= 2_500 && *usage <= 2_500)
    );
    println!("| tool schemas, tokens | {} | 4.2k | | |", s.tools);
    if !s.pss_per_session.is_empty() {
        let beyond: Vec<String> = s.pss_per_session.iter().map(|(_, per, _)| format!("{per:.0}")).collect();
        let over: Vec<String> = s.pss_per_session.iter().map(|(_, _, over)| format!("{over:.0}")).collect();
        let counts: Vec<String> = s.pss_per_session.iter().map(|(n, _, _)| n.to_string()).collect();
        let worst = s.pss_per_session.iter().map(|(_, per, _)| *per).fold(0.0, f64::max);
        println!(
            "| PSS per extra session, {} held mid-task | {} MB ({} MB/session over idle) | +235 MB | ≤ 60 MB | {} |",
            counts.join("/"),
            beyond.join(" / "),
            over.join(" / "),
            met(worst <= 60.0)
        );
    }
    if let Some(Concurrent { wall, single, multi, completed, sessions }) = &s.concurrent {
        println!(
            "| {sessions} concurrent sessions, whole task | {completed}/{sessions} completed in {wall:.1} s; single step p50 {:.0} / p95 {:.0} ms, multi p50 {:.0} / p95 {:.0} ms | | all complete | {} |",
            p(single, 0.5),
            p(single, 0.95),
            p(multi, 0.5),
            p(multi, 0.95),
            met(completed == sessions)
        );
    }
}
