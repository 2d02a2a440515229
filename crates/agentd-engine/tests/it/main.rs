//! Engine-level races: commands arriving together from HTTP and WebSocket clients must
//! never leave a session in a live status with nobody running it.

use std::sync::Arc;
use std::time::Duration;

use agentd_domain::{Mode, Priority, ProjectId, SessionSpec, SessionStatus};
use agentd_engine::*;
use agentd_store::{SharedStore, SqliteStore};
use async_trait::async_trait;
use serde_json::Map;

/// Returns as if the session had ended, although it has not.
struct EndsQuietly;

#[async_trait]
impl Agent for EndsQuietly {
    async fn run(&self, _ctx: SessionContext) -> Result<Completion, AgentError> {
        Err(AgentError::Ended)
    }
}

/// Asks a person again and again.
struct AsksForever;

#[async_trait]
impl Agent for AsksForever {
    async fn run(&self, ctx: SessionContext) -> Result<Completion, AgentError> {
        loop {
            ctx.request_input("x", "why").await?;
        }
    }
}

fn new_session(mode: Mode) -> NewSession {
    NewSession {
        spec: SessionSpec {
            mode,
            goal: "g".into(),
            start_url: None,
            max_actions: 10,
            max_cycles: 1,
            timeout_seconds: 3600,
            inactivity_timeout_seconds: 3600,
            display_width: 1024,
            display_height: 768,
            headless: true,
            webhook_url: None,
            allowed_domains: vec![],
            model: None,
            output_schema: None,
            secret_names: vec![],
            driver: Default::default(),
            continues: None,
            conversation: Vec::new(),
            conversation_id: None,
            agent: None,
            instructions: None,
            tools: None,
        },
        name: None,
        tags: vec![],
        priority: Priority::Normal,
        user_id: None,
        metadata: Map::new(),
        secrets: Default::default(),
        webhook_format: (agentd_engine::webhooks::NATIVE.into(), serde_json::json!({})),
    }
}

async fn engine(dir: &std::path::Path) -> (Engine, ProjectId) {
    let store: SharedStore = Arc::new(SqliteStore::open(dir).await.unwrap());
    let project = store.ensure_project("default").await.unwrap();
    let mut registry = AgentRegistry::new();
    registry.register(Mode::Browser, Arc::new(EndsQuietly));
    registry.register(Mode::Chat, Arc::new(AsksForever));
    (Engine::start(store, registry, EngineConfig::new(64)).await.unwrap(), project.id)
}

async fn wait_for(engine: &Engine, project: ProjectId, id: agentd_domain::SessionId, done: impl Fn(SessionStatus) -> bool) -> SessionStatus {
    for _ in 0..2000 {
        let status = engine.get_session(project, id).await.unwrap().status;
        if done(status) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("session {id} never reached the expected status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_returns_without_finishing_fails_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, project) = engine(dir.path()).await;
    let s = engine.create_session(project, new_session(Mode::Browser)).await.unwrap();
    let status = wait_for(&engine, project, s.id, SessionStatus::is_terminal).await;
    assert_eq!(status, SessionStatus::Failed);
    let session = engine.get_session(project, s.id).await.unwrap();
    assert_eq!(session.error.as_deref(), Some("the agent stopped without finishing"));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_racing_pause_and_resume_never_strand_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, project) = engine(dir.path()).await;
    for _ in 0..40 {
        let s = engine.create_session(project, new_session(Mode::Chat)).await.unwrap();
        wait_for(&engine, project, s.id, |st| st == SessionStatus::Waiting).await;
        for _ in 0..10 {
            let e = engine.clone();
            let answer = tokio::spawn(async move {
                let _ = e.answer_input(project, s.id, SessionAnswer { text: Some("t".into()), ..Default::default() }).await;
            });
            let e = engine.clone();
            let toggle = tokio::spawn(async move {
                let _ = e.pause(project, s.id).await;
                let _ = e.resume(project, s.id).await;
            });
            answer.await.unwrap();
            toggle.await.unwrap();
        }
        // Whatever interleaving happened, the session can be resumed (if paused) and stopped.
        let _ = engine.resume(project, s.id).await;
        let stopped = engine.stop(project, s.id).await.expect("a live session can always be stopped");
        assert_eq!(stopped.status, SessionStatus::Stopped);
        // The log agrees: seqs 1..n, exactly one terminal event, last.
        let events = engine.events(project, s.id, 0, 10_000).await.unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        assert_eq!(events.iter().filter(|e| e.kind.is_terminal()).count(), 1);
        assert!(events.last().unwrap().kind.is_terminal());
        // No answer was recorded twice for one request.
        let mut answered: Vec<&str> = events
            .iter()
            .filter(|e| e.kind == agentd_domain::EventKind::InputReceived)
            .filter_map(|e| e.data["request_id"].as_str())
            .collect();
        let n = answered.len();
        answered.sort();
        answered.dedup();
        assert_eq!(answered.len(), n, "an answer was recorded twice");
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn a_mode_without_an_agent_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, project) = engine(dir.path()).await;
    let refused = engine.create_session(project, new_session(Mode::Research)).await.unwrap_err();
    assert!(matches!(refused, agentd_engine::EngineError::ModeUnavailable(Mode::Research)), "{refused}");
    let query = agentd_store::SessionQuery::newest_first(project, 10);
    assert!(engine.list_sessions(&query).await.unwrap().is_empty());
    engine.shutdown().await;
}
