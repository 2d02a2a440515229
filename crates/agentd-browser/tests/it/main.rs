//! The browser runtime against a real headless Chromium and a page served on loopback.

use std::time::Duration;

use agentd_browser::{BrowserError, BrowserPool, BrowserSettings, Viewport};
mod egress;

/// The runtime's settings for these tests: the fixture site is on loopback, which the egress
/// policy refuses by default, so loopback hosts are allowed here (on any port: each test serves
/// its own site; `egress.rs` holds the policy's own tests, which allow exactly one port).
fn loopback_settings() -> BrowserSettings {
    let policy = agentd_egress::EgressPolicy {
        allow: agentd_egress::EgressAllow::parse(&["127.0.0.1", "localhost"]).unwrap(),
        ..Default::default()
    };
    let proxy = agentd_egress::ProxySettings { policy, ..Default::default() };
    BrowserSettings { egress: agentd_egress::EgressProxy::new(proxy), ..BrowserSettings::default() }
}

/// The fixture site's base URL (a fresh server per test).
async fn fixture() -> String {
    agentd_testsite::serve().await
}

/// The index of the element named `name` in `state`.
fn index_of(state: &agentd_browser::PageState, name: &str) -> u64 {
    state
        .elements
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("{name} in {}", state.render()))
        .index
}

async fn eval<T: serde::de::DeserializeOwned>(page: &chromiumoxide::Page, js: &str) -> T {
    page.evaluate(js).await.unwrap().into_value().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_are_isolated_sized_and_torn_down() {
    let url = fixture().await;
    let settings = BrowserSettings { max_contexts: 2, warm_contexts: 0, ..loopback_settings() };
    let pool = BrowserPool::start(&settings).await.expect("Chromium starts (apt-get install -y chromium)");
    let a = pool.lease(Viewport { width: 1280, height: 800 }).await.unwrap();
    let b = pool.lease(Viewport { width: 640, height: 480 }).await.unwrap();
    // N = 2 contexts are allowed; N + 1 is refused.
    assert!(matches!(pool.lease(Viewport { width: 800, height: 600 }).await, Err(BrowserError::AtCapacity(2))));
    for s in [&a, &b] {
        tokio::time::timeout(Duration::from_secs(20), s.page().goto(url.as_str())).await.expect("loads").unwrap();
        assert_eq!(eval::<String>(s.page(), "document.getElementById('p').textContent").await, "hello");
    }
    assert_eq!(eval::<i64>(a.page(), "window.innerWidth").await, 1280);
    assert_eq!(eval::<i64>(a.page(), "window.innerHeight").await, 800);
    assert_eq!(eval::<i64>(b.page(), "window.innerWidth").await, 640);
    // Cookies and storage set in one context are invisible in the other.
    let _: String = eval(a.page(), "document.cookie = 'who=a'; localStorage.setItem('k', 'a'); document.cookie").await;
    assert_eq!(eval::<String>(a.page(), "document.cookie").await, "who=a");
    assert_eq!(eval::<String>(b.page(), "document.cookie").await, "");
    assert!(eval::<bool>(b.page(), "localStorage.getItem('k') === null").await);
    assert_eq!(eval::<String>(a.page(), "localStorage.getItem('k')").await, "a");
    assert_eq!(pool.browser_context_ids().await.unwrap().len(), 2);
    assert_eq!(pool.contexts_in_use(), 2);
    a.close().await.unwrap();
    assert_eq!(pool.browser_context_ids().await.unwrap().len(), 1, "the context is disposed");
    assert_eq!(pool.contexts_in_use(), 1);
    // A new context starts clean.
    let c = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
    c.page().goto(url.as_str()).await.unwrap();
    assert_eq!(eval::<String>(c.page(), "document.cookie").await, "");
    c.close().await.unwrap();
    b.close().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test]
async fn a_missing_browser_is_a_clear_error() {
    let settings = BrowserSettings { executable: Some("/nonexistent/chromium".into()), ..loopback_settings() };
    let error = BrowserPool::start(&settings).await.err().expect("refused").to_string();
    assert!(error.contains("AGENTD_CHROME"), "{error}");
    let settings = BrowserSettings { cdp_url: Some("http://127.0.0.1:9/".into()), launch_timeout: Duration::from_secs(5), ..loopback_settings() };
    let error = BrowserPool::start(&settings).await.err().expect("refused").to_string();
    assert!(error.contains("127.0.0.1:9"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_state_lists_every_interactive_element_once() {
    let url = format!("{}form", fixture().await);
    let pool = BrowserPool::start(&loopback_settings()).await.unwrap();
    let session = pool.lease(Viewport { width: 1024, height: 768 }).await.unwrap();
    session.page().goto(url.as_str()).await.unwrap();
    // The cross-origin frame loads on its own; wait until it has.
    let _: bool = eval(session.page(), "new Promise(r => { const f = document.getElementById('cross'); f.onload = () => r(true); setTimeout(() => r(true), 3000); })").await;
    let state = agentd_browser::observe(session.page()).await.unwrap();
    assert_eq!(state.title, "Form fixture");
    let expected = [
        ("textbox", "Email address"),
        ("textbox", "Password"),
        ("searchbox", "Search products"),
        ("checkbox", "Subscribe"),
        ("radio", "Small"),
        ("combobox", "Country"),
        ("textbox", "Your message"),
        ("slider", "Volume"),
        ("spinbutton", "Quantity"),
        ("textbox", "Phone"),
        ("textbox", "Website"),
        ("textbox", "Birthday"),
        ("textbox", "Alarm"),
        ("textbox", "Meeting"),
        ("textbox", "Month"),
        ("textbox", "Week"),
        ("button", "Colour"),
        ("button", "Résumé"),
        ("listbox", "Toppings"),
        ("button", "Clear"),
        ("button", "Submit form"),
        ("button", "Send"),
        ("button", "Menu"),
        ("button", "More options"),
        ("button", "Custom control"),
        ("button", "Shadow button"),
        ("button", "Inside frame"),
        ("button", "Cross button"),
        ("link", "Far below"),
    ];
    for (role, name) in expected {
        let found: Vec<_> = state.elements.iter().filter(|e| e.role == role && e.name == name).collect();
        assert_eq!(found.len(), 1, "{role} {name:?} should appear once in {:#?}", state.elements);
    }
    assert_eq!(state.elements.len(), expected.len(), "nothing else: {}", state.render());
    let by_name = |n: &str| state.elements.iter().find(|e| e.name == n).unwrap();
    assert_eq!(by_name("Email address").value.as_deref(), Some("a@b.c"));
    assert_eq!(by_name("Password").value.as_deref(), Some("••••"), "passwords are masked");
    assert_eq!(by_name("Subscribe").checked, Some(true));
    assert_eq!(by_name("Small").checked, Some(false));
    assert_eq!(by_name("Country").value.as_deref(), Some("Japan"));
    assert_eq!(by_name("Send").disabled, Some(true));
    assert_eq!(by_name("Menu").expanded, Some(false));
    assert_eq!(by_name("More options").expanded, Some(false));
    assert_eq!(by_name("Inside frame").frame, 1);
    let cross = by_name("Cross button");
    assert_eq!(cross.frame, 1, "read inside the cross-origin frame");
    assert!(cross.x > by_name("Inside frame").x + 200, "placed where the frame is on the page: {cross:?}");
    let far = by_name("Far below");
    assert!(far.below > 2000 && !far.in_viewport(), "{far:?}");
    assert!(far.href.as_deref().unwrap().ends_with("/far"));
    assert!(state.scroll.below() > 2000);
    let text = state.render();
    assert!(text.contains(&format!("[{}] link \"Far below\"", far.index)) && text.contains("(↓ "), "{text}");
    assert!(!text.contains("secret") && !text.contains("Hidden"));
    // Indices are stable across observations, and new elements get new ones.
    let _: bool = eval(session.page(), "document.body.insertAdjacentHTML('afterbegin', '<button>New</button>'); true").await;
    let again = agentd_browser::observe(session.page()).await.unwrap();
    for e in &state.elements {
        let same = again.elements.iter().find(|x| x.name == e.name && x.role == e.role).unwrap();
        assert_eq!(same.index, e.index, "{} kept its index", e.name);
    }
    let new = again.elements.iter().find(|e| e.name == "New").unwrap();
    assert!(state.elements.iter().all(|e| e.index != new.index));
    session.close().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_change_the_page_as_a_person_would() {
    use agentd_browser::{ActionError, TypeMode, click, navigate, observe, type_text};
    let base = fixture().await;
    let pool = BrowserPool::start(&loopback_settings()).await.unwrap();
    let session = pool.lease(Viewport { width: 1024, height: 768 }).await.unwrap();
    let page = session.page();
    let outcome = navigate(page, &format!("{base}actions"), Duration::from_secs(20)).await.unwrap();
    assert_eq!(outcome.action, "navigate");
    let _: bool = eval(page, "new Promise(r => setTimeout(() => r(true), 50))").await;
    let state = observe(page).await.unwrap();
    let idx = |name: &str| index_of(&state, name);

    // Click: by its effect on the page, read back through the page.
    click(page, idx("Add one")).await.unwrap();
    click(page, idx("Add one")).await.unwrap();
    assert_eq!(eval::<String>(page, "document.getElementById('inc').dataset.n").await, "2");
    click(page, idx("Shadow add")).await.unwrap();
    assert_eq!(eval::<i64>(page, "window.shadowClicks").await, 1);
    click(page, idx("Frame button")).await.unwrap();
    assert_eq!(eval::<String>(page, "document.title").await, "frame clicked");
    assert!(matches!(click(page, idx("Locked")).await, Err(ActionError::Disabled(_))));

    // Type: replace, append, Enter, contenteditable.
    type_text(page, idx("Name"), "Grace", TypeMode::Replace, false).await.unwrap();
    assert_eq!(eval::<String>(page, "document.getElementById('name').value").await, "Grace");
    type_text(page, idx("Name"), " Hopper", TypeMode::Append, false).await.unwrap();
    assert_eq!(eval::<String>(page, "document.getElementById('name').value").await, "Grace Hopper");
    type_text(page, idx("Query"), "rust", TypeMode::Replace, true).await.unwrap();
    assert_eq!(eval::<String>(page, "document.title").await, "searched rust");
    type_text(page, idx("Notes"), "new notes", TypeMode::Replace, false).await.unwrap();
    assert_eq!(eval::<String>(page, "document.querySelector('[contenteditable]').innerText.trim()").await, "new notes");
    assert!(matches!(type_text(page, idx("Add one"), "x", TypeMode::Replace, false).await, Err(ActionError::NotEditable(_))));

    // An element removed since the observation is reported as gone, not clicked blindly.
    let _: bool = eval(page, "document.getElementById('gone').remove(); true").await;
    assert!(matches!(click(page, idx("Vanishing")).await, Err(ActionError::ElementGone(_))));
    assert!(matches!(click(page, 999_999).await, Err(ActionError::ElementGone(999_999))));

    // Far below the viewport: scrolled into view, then clicked; the click navigates.
    click(page, idx("Home far below")).await.unwrap();
    for _ in 0..200 {
        if page.url().await.unwrap().unwrap_or_default() == base {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(page.url().await.unwrap().unwrap_or_default(), base);
    session.close().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_check_hover_scroll_and_history() {
    use agentd_browser::*;
    let base = fixture().await;
    let pool = BrowserPool::start(&loopback_settings()).await.unwrap();
    let session = pool.lease(Viewport { width: 1024, height: 768 }).await.unwrap();
    let page = session.page();
    let wait = Duration::from_secs(20);
    navigate(page, &format!("{base}actions"), wait).await.unwrap();
    navigate(page, &format!("{base}controls"), wait).await.unwrap();
    let state = observe(page).await.unwrap();
    let idx = |name: &str| index_of(&state, name);

    select_option(page, idx("Size"), "Medium").await.unwrap();
    assert_eq!(eval::<String>(page, "document.title").await, "size m");
    select_option(page, idx("Size"), "s").await.unwrap();
    assert_eq!(eval::<String>(page, "document.querySelector('select').value").await, "s");
    let err = select_option(page, idx("Size"), "Huge").await.unwrap_err().to_string();
    assert!(err.contains("Small") && err.contains("Medium"), "{err}");
    assert!(select_option(page, idx("Size"), "Large").await.unwrap_err().to_string().contains("disabled"));
    assert!(matches!(select_option(page, idx("Hover me"), "x").await, Err(ActionError::Refused { .. })));

    set_checked(page, idx("Accept terms"), true).await.unwrap();
    assert!(eval::<bool>(page, "document.getElementById('terms').checked").await);
    set_checked(page, idx("Accept terms"), true).await.unwrap();
    assert!(eval::<bool>(page, "document.getElementById('terms').checked").await, "checking twice leaves it checked");
    set_checked(page, idx("Accept terms"), false).await.unwrap();
    assert!(!eval::<bool>(page, "document.getElementById('terms').checked").await);
    set_checked(page, idx("Dark mode"), true).await.unwrap();
    assert_eq!(eval::<String>(page, "document.querySelector('[role=switch]').getAttribute('aria-checked')").await, "true");

    hover(page, idx("Hover me")).await.unwrap();
    assert_eq!(eval::<String>(page, "document.getElementById('hov').dataset.hovered").await, "yes");

    scroll(page, ScrollTarget::Pages(1.0)).await.unwrap();
    assert_eq!(eval::<i64>(page, "Math.round(window.scrollY)").await, 768);
    scroll(page, ScrollTarget::Pages(-1.0)).await.unwrap();
    assert_eq!(eval::<i64>(page, "Math.round(window.scrollY)").await, 0);
    scroll(page, ScrollTarget::Element(idx("Scroll box"), 1.0)).await.unwrap();
    assert_eq!(eval::<i64>(page, "document.getElementById('box').scrollTop").await, 100);
    scroll(page, ScrollTarget::Text("hidden treasure".into())).await.unwrap();
    assert!(eval::<bool>(page, "(() => { const r = document.querySelector('p').getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; })()").await);
    assert!(matches!(scroll(page, ScrollTarget::Text("not on the page".into())).await, Err(ActionError::TextNotFound(_))));

    go_history(page, -1, wait).await.unwrap();
    assert!(page.url().await.unwrap().unwrap().ends_with("/actions"));
    go_history(page, 1, wait).await.unwrap();
    assert!(page.url().await.unwrap().unwrap().ends_with("/controls"));
    assert!(matches!(go_history(page, 1, wait).await, Err(ActionError::NoHistory("forward"))));
    let _: bool = eval(page, "window.marker = 1; true").await;
    reload(page, wait).await.unwrap();
    assert!(eval::<bool>(page, "window.marker === undefined").await, "a fresh document after reload");
    session.close().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_screenshots() {
    use agentd_browser::*;
    let base = fixture().await;
    let pool = BrowserPool::start(&loopback_settings()).await.unwrap();
    let session = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
    let page = session.page();
    navigate(page, &format!("{base}keys"), Duration::from_secs(20)).await.unwrap();
    let state = observe(page).await.unwrap();
    let field = state.elements.iter().find(|e| e.name == "Keys field").unwrap().index;
    click(page, field).await.unwrap();
    press_keys(page, &["End", "Backspace", "Backspace", "x", "Shift+Tab"]).await.unwrap();
    assert_eq!(eval::<String>(page, "document.getElementById('k').value").await, "hello worx");
    let log: Vec<String> = eval(page, "window.log").await;
    assert_eq!(log, ["End", "Backspace", "Backspace", "x", "S-Shift", "S-Tab"]);
    // Control+A selects all: the next character replaces the whole value.
    click(page, field).await.unwrap();
    press_keys(page, &["Control+a", "z"]).await.unwrap();
    assert_eq!(eval::<String>(page, "document.getElementById('k').value").await, "z");
    assert!(matches!(press_keys(page, &["Hyper+x"]).await, Err(ActionError::BadKey(_))));
    let jpeg = screenshot(page, 70, &Default::default()).await.unwrap();
    assert_eq!(&jpeg[..3], &[0xFF, 0xD8, 0xFF], "a JPEG");
    assert!(jpeg.len() > 1000);
    session.close().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialogs_are_answered_by_policy_and_reported() {
    use agentd_browser::*;
    let base = fixture().await;
    for (policy, confirm_title, prompt_title) in [
        (DialogPolicy::default(), "cancelled", "no answer"),
        (DialogPolicy { accept_confirms: true, prompt_answer: Some("Ada".into()) }, "confirmed", "name Ada"),
    ] {
        let settings = BrowserSettings { dialogs: policy.clone(), ..loopback_settings() };
        let pool = BrowserPool::start(&settings).await.unwrap();
        let session = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
        let page = session.page();
        navigate(page, &format!("{base}dialogs"), Duration::from_secs(20)).await.unwrap();
        let state = observe(page).await.unwrap();
        let idx = |name: &str| index_of(&state, name);
        for (button, title) in [("Alert", "after alert"), ("Confirm", confirm_title), ("Prompt", prompt_title)] {
            click(page, idx(button)).await.unwrap();
            let _: bool = eval(page, "new Promise(r => setTimeout(() => r(true), 0))").await;
            assert_eq!(eval::<String>(page, "document.title").await, title, "{policy:?}");
        }
        let dialogs = session.take_dialogs();
        let kinds: Vec<&str> = dialogs.iter().map(|d| d.kind.as_str()).collect();
        assert_eq!(kinds, ["alert", "confirm", "prompt"]);
        assert_eq!(dialogs[1].message, "Delete everything?");
        assert_eq!(dialogs[1].accepted, policy.accept_confirms);
        assert_eq!(dialogs[2].prompt_text, policy.prompt_answer);
        assert!(session.take_dialogs().is_empty(), "drained");
        session.close().await.unwrap();
        pool.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_content_is_extracted_as_markdown() {
    use agentd_browser::*;
    let base = fixture().await;
    let pool = BrowserPool::start(&loopback_settings()).await.unwrap();
    let session = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
    let page = session.page();
    navigate(page, &format!("{base}article"), Duration::from_secs(20)).await.unwrap();
    let (content, outcome) = extract_markdown(page).await.unwrap();
    assert_eq!(outcome.action, "extract");
    assert_eq!(content.title, "Rust ownership explained");
    let md = &content.markdown;
    assert!(md.contains("## The three rules"), "{md}");
    assert!(md.contains("- There can only be one owner at a time.") || md.contains("* There can only be one owner at a time."), "{md}");
    assert!(md.contains(&format!("[the book]({base}book)")), "links kept and absolute: {md}");
    assert!(md.contains("shared") && md.contains("&mut T"), "table kept: {md}");
    assert!(!md.contains("Buy cheap watches") && !md.contains("All rights reserved"), "ads and footer dropped: {md}");
    // A page with no article shape falls back to its visible text.
    navigate(page, &format!("{base}keys"), Duration::from_secs(20)).await.unwrap();
    let (content, _) = extract_markdown(page).await.unwrap();
    assert_eq!(content.title, "Keys");
    session.close().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_waits() {
    use agentd_browser::*;
    let base = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.txt");
    std::fs::write(&file, "quarterly numbers").unwrap();
    let pool = BrowserPool::start(&loopback_settings()).await.unwrap();
    let session = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
    let page = session.page();
    navigate(page, &format!("{base}upload"), Duration::from_secs(20)).await.unwrap();
    let state = observe(page).await.unwrap();
    let idx = |name: &str| index_of(&state, name);
    // The hidden input is listed where its visible label is.
    let hidden = idx("Attach a document");
    upload_files(page, hidden, std::slice::from_ref(&file)).await.unwrap();
    let _: bool = eval(page, "new Promise(r => setTimeout(() => r(true), 100))").await;
    assert_eq!(eval::<String>(page, "document.title").await, "report.txt:quarterly numbers");
    let two = [file.clone(), file.clone()];
    upload_files(page, idx("Attach several"), &two).await.unwrap();
    assert_eq!(eval::<i64>(page, "document.getElementById('many').files.length").await, 2);
    let refused = upload_files(page, hidden, &two).await.unwrap_err().to_string();
    assert!(refused.contains("one file"), "{refused}");
    let missing = upload_files(page, hidden, &[dir.path().join("nope.txt")]).await.unwrap_err().to_string();
    assert!(missing.contains("no file at"), "{missing}");
    assert!(matches!(upload_files(page, idx("Order"), std::slice::from_ref(&file)).await, Err(ActionError::Refused { .. })));
    // Waiting is woken by the DOM change, bounded by the timeout.
    click(page, idx("Order")).await.unwrap();
    wait_for_text(page, "Order confirmed", Duration::from_secs(10)).await.unwrap();
    let late = wait_for_text(page, "never shown", Duration::from_millis(300)).await;
    assert!(matches!(late, Err(ActionError::WaitTimeout { .. })));
    session.close().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_page_is_detected_and_replaced_without_touching_others() {
    use agentd_browser::*;
    use chromiumoxide::cdp::browser_protocol::page::CrashParams;
    let base = fixture().await;
    let pool = BrowserPool::start(&loopback_settings()).await.unwrap();
    let mut victim = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
    let bystander = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
    navigate(victim.page(), &format!("{base}keys"), Duration::from_secs(20)).await.unwrap();
    navigate(bystander.page(), &format!("{base}keys"), Duration::from_secs(20)).await.unwrap();
    let _: String = eval(victim.page(), "document.cookie = 'kept=yes'; document.cookie").await;
    assert!(victim.recover().await.unwrap().is_none(), "nothing to recover from yet");
    // Crash the victim's renderer; the command itself may never answer.
    let _ = tokio::time::timeout(Duration::from_secs(2), victim.page().execute(CrashParams::default())).await;
    for _ in 0..500 {
        if victim.page_crashed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(victim.page_crashed(), "the crash is detected");
    assert!(!bystander.page_crashed());
    let recovery = victim.recover().await.unwrap().expect("recovered");
    assert_eq!(recovery.cause, RecoveryCause::PageCrashed);
    assert!(recovery.message.contains("crashed"), "{}", recovery.message);
    assert!(!victim.page_crashed());
    navigate(victim.page(), &format!("{base}keys"), Duration::from_secs(20)).await.unwrap();
    assert_eq!(eval::<String>(victim.page(), "document.cookie").await, "kept=yes", "same context, same cookies");
    assert_eq!(eval::<String>(bystander.page(), "document.title").await, "Keys", "other sessions untouched");
    victim.close().await.unwrap();
    bystander.close().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn popups_are_tracked_and_tabs_switch_and_close() {
    use agentd_browser::*;
    let base = fixture().await;
    let pool = BrowserPool::start(&loopback_settings()).await.unwrap();
    let mut session = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
    let other = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
    navigate(session.page(), &format!("{base}popup"), Duration::from_secs(20)).await.unwrap();
    let opener = session.tabs().await.unwrap();
    assert_eq!(opener.len(), 1);
    assert!(opener[0].active && opener[0].title == "Opener");
    let state = observe(session.page()).await.unwrap();
    let link = state.elements.iter().find(|e| e.role == "link").unwrap().index;
    click(session.page(), link).await.unwrap();
    let mut tabs = Vec::new();
    for _ in 0..500 {
        tabs = session.tabs().await.unwrap();
        if tabs.len() == 2 && tabs.iter().any(|t| t.url.ends_with("/keys")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let popup = tabs.iter().find(|t| t.url.ends_with("/keys")).expect("the popup is tracked").clone();
    assert!(!popup.active);
    assert_eq!(other.tabs().await.unwrap().len(), 1, "another session does not see it");
    session.switch_tab(&popup.id).await.unwrap();
    let _: bool = eval(session.page(), "new Promise(r => document.readyState === 'complete' ? r(true) : addEventListener('load', () => r(true)))").await;
    assert_eq!(eval::<String>(session.page(), "document.title").await, "Keys");
    assert_eq!(eval::<i64>(session.page(), "window.innerWidth").await, 800, "the popup gets the session's viewport");
    assert!(session.switch_tab(other.tabs().await.unwrap()[0].id.as_str()).await.is_err(), "another session's tab is refused");
    session.close_tab(&popup.id).await.unwrap();
    let left = session.tabs().await.unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].active && left[0].title == "Opener", "closing the active tab activates the other");
    let fresh = session.open_tab().await.unwrap();
    navigate(session.page(), &format!("{base}keys"), Duration::from_secs(20)).await.unwrap();
    assert_eq!(session.tabs().await.unwrap().iter().filter(|t| t.active).map(|t| t.id.clone()).collect::<Vec<_>>(), vec![fresh]);
    session.close().await.unwrap();
    other.close().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_contexts_are_fresh_and_refilled() {
    use agentd_browser::*;
    let base = fixture().await;
    // A cap of two: both leases below would be refused if warm contexts took slots.
    let settings = BrowserSettings { warm_contexts: 2, max_contexts: 2, ..loopback_settings() };
    let pool = BrowserPool::start(&settings).await.unwrap();
    let ready = async |pool: &BrowserPool, n: usize| {
        for _ in 0..1000 {
            if pool.warm_contexts() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the warm reserve never reached {n}");
    };
    ready(&pool, 2).await;
    let first = pool.lease(Viewport { width: 1100, height: 700 }).await.unwrap();
    navigate(first.page(), &format!("{base}keys"), Duration::from_secs(20)).await.unwrap();
    assert_eq!(eval::<i64>(first.page(), "window.innerWidth").await, 1100, "a warm context takes the session's viewport");
    let _: String = eval(first.page(), "document.cookie = 'mine=1'; document.cookie").await;
    ready(&pool, 2).await;
    let second = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
    navigate(second.page(), &format!("{base}keys"), Duration::from_secs(20)).await.unwrap();
    assert_eq!(eval::<String>(second.page(), "document.cookie").await, "", "warm contexts are fresh and never shared");
    assert_eq!(pool.contexts_in_use(), 2, "warm contexts do not count against the cap");
    first.close().await.unwrap();
    second.close().await.unwrap();
    pool.shutdown().await;
}

/// Waits until `js` holds in the page (checked on each animation frame, bounded).
async fn until(page: &chromiumoxide::Page, js: &str) {
    let script = format!("new Promise(r => {{ const t0 = Date.now(); (function f() {{ if ({js}) r(true); else if (Date.now() - t0 > 10000) r(false); else requestAnimationFrame(f); }})(); }})");
    assert!(eval::<bool>(page, &script).await, "timed out waiting for {js}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_and_cross_origin_frames_are_read_and_acted_in() {
    use agentd_browser::*;
    let base = fixture().await;
    let pool = BrowserPool::start(&loopback_settings()).await.unwrap();
    let mut session = pool.lease(Viewport { width: 1024, height: 768 }).await.unwrap();
    navigate(session.page(), &format!("{base}frames"), Duration::from_secs(20)).await.unwrap();
    // The frames load one after the other; the leaf is last.
    let mut state = session.observe().await.unwrap();
    for _ in 0..200 {
        if state.elements.iter().any(|e| e.name == "Leaf button") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        state = session.observe().await.unwrap();
    }
    for (name, depth) in [("Top button", 0), ("Outer button", 1), ("Inner field", 2), ("Inner button", 2), ("Leaf button", 3)] {
        let found: Vec<_> = state.elements.iter().filter(|e| e.name == name).collect();
        assert_eq!(found.len(), 1, "{name} once in {}", state.render());
        assert_eq!(found[0].frame, depth, "{name}");
    }
    let mut indices: Vec<u64> = state.elements.iter().map(|e| e.index).collect();
    indices.sort();
    indices.dedup();
    assert_eq!(indices.len(), state.elements.len(), "indices are unique across documents");
    let text = state.render();
    assert!(text.contains("Outer frame") && text.contains("Inner frame text"), "text inside frames: {text}");
    let idx = |name: &str| index_of(&state, name);
    // Acting inside the cross-origin frames, read back through those frames' own documents.
    session.act(&Action::Click { index: idx("Inner button"), button: ClickKind::Single }).await.unwrap();
    session.act(&Action::Type { index: idx("Inner field"), text: "deep".into(), append: false, enter: true }).await.unwrap();
    session.act(&Action::Click { index: idx("Leaf button"), button: ClickKind::Single }).await.unwrap();
    let titles: Vec<String> = {
        let page = session.page();
        let mut titles = Vec::new();
        for frame in page.frames().await.unwrap() {
            if let Some(context) = page.frame_execution_context(frame).await.unwrap() {
                let mut params = chromiumoxide::cdp::js_protocol::runtime::EvaluateParams::new("document.title");
                params.context_id = Some(context);
                titles.push(page.evaluate_expression(params).await.unwrap().into_value().unwrap());
            }
        }
        titles
    };
    assert!(titles.contains(&"inner deep".to_string()), "typed with Enter in the cross-origin frame: {titles:?}");
    assert!(titles.contains(&"leaf clicked".to_string()), "clicked in the nested frame: {titles:?}");
    // Indices stay stable across observations, frames included.
    let again = session.observe().await.unwrap();
    assert_eq!(index_of(&again, "Leaf button"), idx("Leaf button"));
    assert_eq!(index_of(&again, "Top button"), idx("Top button"));
    session.close().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_product_list_is_searched_and_trimmed_to_the_budget() {
    use agentd_browser::*;
    let base = fixture().await;
    let pool = BrowserPool::start(&loopback_settings()).await.unwrap();
    let mut session = pool.lease(Viewport { width: 1024, height: 768 }).await.unwrap();
    session.act(&Action::Navigate { url: format!("{base}products") }).await.unwrap();
    let state = session.observe().await.unwrap();
    // Every interactive element exactly once, by the page's own count.
    let names: Vec<String> = eval(session.page(), "Array.from(document.querySelectorAll('a, button, input')).map(e => e.getAttribute('aria-label') || e.textContent.trim())").await;
    assert_eq!(names.len(), 100 * 2 + 3);
    for name in &names {
        assert_eq!(state.elements.iter().filter(|e| &e.name == name).count(), 1, "{name}");
    }
    assert_eq!(state.elements.len(), names.len());
    assert!(state.texts.iter().any(|t| t.text == "100 products"), "visible text is kept");
    let full = state.render_within(usize::MAX);
    assert!(!full.contains("trimmed"));
    // A budget smaller than the page: elements in view are all kept, and it says what went.
    let budget = 1_000;
    let small = state.render_within(budget);
    assert!(PageState::tokens(&small) <= budget, "{} tokens", PageState::tokens(&small));
    assert!(small.contains("page state trimmed"), "{small}");
    for e in state.elements.iter().filter(|e| e.in_viewport()) {
        assert!(small.contains(&format!("[{}] ", e.index)), "in-view element {} kept", e.name);
    }
    assert!(state.elements.iter().any(|e| !e.in_viewport() && !small.contains(&format!("[{}] ", e.index))));
    // Search filters the list on the page.
    let search = index_of(&state, "Search products");
    session.act(&Action::Type { index: search, text: "copper".into(), append: false, enter: false }).await.unwrap();
    let found = session.observe().await.unwrap();
    let add: Vec<_> = found.elements.iter().filter(|e| e.name.starts_with("Add ")).collect();
    assert_eq!(add.len(), 10, "{}", found.render());
    session.act(&Action::Click { index: add[0].index, button: ClickKind::Single }).await.unwrap();
    assert_eq!(eval::<String>(session.page(), "document.getElementById('count').textContent").await, "1");
    // Contradictory arguments are refused rather than half obeyed.
    let both = Action::Scroll { pages: None, index: Some(search), to_text: Some("Copper".into()) };
    assert!(matches!(session.act(&both).await, Err(ActionError::BadArguments(_))));
    session.close().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_routed_app_and_clicks_of_every_kind() {
    use agentd_browser::*;
    let base = fixture().await;
    let pool = BrowserPool::start(&loopback_settings()).await.unwrap();
    let mut session = pool.lease(Viewport { width: 1024, height: 768 }).await.unwrap();
    session.act(&Action::Navigate { url: format!("{base}app/home") }).await.unwrap();
    let state = session.observe().await.unwrap();
    session.act(&Action::Click { index: index_of(&state, "Settings"), button: ClickKind::Single }).await.unwrap();
    assert_eq!(eval::<String>(session.page(), "document.title").await, "App — settings");
    let settings = session.observe().await.unwrap();
    assert!(settings.url.ends_with("/app/settings"));
    session.act(&Action::Check { index: index_of(&settings, "Dark theme"), checked: true }).await.unwrap();
    assert!(eval::<bool>(session.page(), "document.getElementById('dark').checked").await);
    session.act(&Action::Back).await.unwrap();
    assert_eq!(eval::<String>(session.page(), "document.title").await, "App — home", "history within the app");
    // A link that loads a new document: the click waits for it and says where it went.
    session.act(&Action::Navigate { url: format!("{base}products") }).await.unwrap();
    let products = session.observe().await.unwrap();
    let outcome = session.act(&Action::Click { index: index_of(&products, "Red Kettle"), button: ClickKind::Single }).await.unwrap();
    assert!(outcome.description.contains("/product/0"), "{}", outcome.description);
    assert_eq!(eval::<String>(session.page(), "document.readyState").await, "complete");
    // Double and right clicks, and a click by coordinates.
    let _: bool = eval(session.page(), "document.body.insertAdjacentHTML('beforeend', '<div id=pad style=\"position:fixed;left:0;top:300px;width:200px;height:100px\" ondblclick=\"this.dataset.d=1\" oncontextmenu=\"this.dataset.r=1; return false\" onclick=\"this.dataset.c=(+this.dataset.c||0)+1\" tabindex=0 aria-label=Pad></div>'); true").await;
    let pad = index_of(&session.observe().await.unwrap(), "Pad");
    session.act(&Action::Click { index: pad, button: ClickKind::Double }).await.unwrap();
    session.act(&Action::Click { index: pad, button: ClickKind::Right }).await.unwrap();
    assert_eq!(eval::<String>(session.page(), "JSON.stringify(document.getElementById('pad').dataset)").await, r#"{"c":"2","d":"1","r":"1"}"#);
    session.act(&Action::ClickAt { x: 100.0, y: 350.0, button: ClickKind::Single }).await.unwrap();
    assert_eq!(eval::<String>(session.page(), "document.getElementById('pad').dataset.c").await, "3");
    let outside = session.act(&Action::ClickAt { x: 5000.0, y: 10.0, button: ClickKind::Single }).await.unwrap_err();
    assert!(matches!(outside, ActionError::OutOfViewport { .. }), "{outside}");
    // Blocked URLs are refused before the browser sees them.
    let blocked = session.act(&Action::Navigate { url: "file:///etc/passwd".into() }).await.unwrap_err();
    assert!(matches!(blocked, ActionError::UrlBlocked { .. }), "{blocked}");
    session.close().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pointer_actions_at_screen_coordinates() {
    use agentd_browser::*;
    let base = fixture().await;
    let pool = BrowserPool::start(&loopback_settings()).await.unwrap();
    let mut session = pool.lease(Viewport { width: 1024, height: 768 }).await.unwrap();
    session.act(&Action::Navigate { url: format!("{base}desk") }).await.unwrap();
    let log = |s: &SessionBrowser| {
        let page = s.page().clone();
        async move { eval::<Vec<String>>(&page, "window.__log.splice(0)").await }
    };
    // A triple click selects the field's text; typing replaces it, a line break submits.
    session.act(&Action::ClickAt { x: 150.0, y: 115.0, button: ClickKind::Triple }).await.unwrap();
    assert_eq!(log(&session).await, ["move 150,115", "down 150,115 1", "up 150,115", "down 150,115 2", "up 150,115", "down 150,115 3", "up 150,115"]);
    let typed = session.act(&Action::TypeText { text: "Ada\n".into() }).await.unwrap();
    assert!(typed.description.contains("name=Ada"), "{}", typed.description);
    assert_eq!(eval::<String>(session.page(), "document.getElementById('out').textContent").await, "Hello, Ada");
    // Move, drag and the wheel, as a person's mouse would.
    session.act(&Action::MoveTo { x: 10.0, y: 20.0 }).await.unwrap();
    session.act(&Action::Drag { path: vec![[10.0, 20.0], [40.0, 50.0], [70.0, 80.0]] }).await.unwrap();
    assert_eq!(log(&session).await, ["move 10,20", "move 10,20", "down 10,20 1", "move 40,50", "move 70,80", "up 70,80"]);
    session.act(&Action::ScrollAt { x: 500.0, y: 400.0, dx: 0.0, dy: 600.0 }).await.unwrap();
    assert_eq!(log(&session).await, ["wheel 500,400 600"]);
    assert!(eval::<f64>(session.page(), "window.scrollY").await > 0.0);
    let short = session.act(&Action::Drag { path: vec![[1.0, 1.0]] }).await.unwrap_err();
    assert!(short.to_string().contains("two points"), "{short}");
    // What a computer-use model sees: a PNG at the size asked for.
    let png = screen_png(session.page(), 512, session.screen_mask()).await.unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), (512, 384));
    session.close().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_network_waits_and_marked_screenshots() {
    use agentd_browser::*;
    let base = fixture().await;
    let folder = tempfile::tempdir().unwrap();
    let pool = BrowserPool::start(&loopback_settings()).await.unwrap();
    let options = SessionOptions {
        viewport: Viewport { width: 800, height: 600 },
        download_dir: Some(folder.path().join("session-1")),
        urls: UrlPolicy::default(),
    };
    let mut session = pool.lease(options).await.unwrap();
    session.act(&Action::Navigate { url: format!("{base}download") }).await.unwrap();
    let state = session.observe().await.unwrap();
    session.act(&Action::Click { index: index_of(&state, "Download the report"), button: ClickKind::Single }).await.unwrap();
    session.act(&Action::Click { index: index_of(&state, "Save the notes"), button: ClickKind::Single }).await.unwrap();
    let files = session.wait_for_downloads(2, Duration::from_secs(20)).await.unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["meeting-notes.txt", "report.csv"]);
    assert_eq!(std::fs::read_to_string(folder.path().join("session-1/report.csv")).unwrap(), "quarter,revenue\nQ1,100\nQ2,120\n");
    assert!(session.page().url().await.unwrap().unwrap().ends_with("/download"), "a download leaves the page where it was");
    // Network quiet: the page's two chained requests are done when the wait ends.
    session.act(&Action::Navigate { url: format!("{base}network") }).await.unwrap();
    let state = session.observe().await.unwrap();
    session.act(&Action::Click { index: index_of(&state, "Load data"), button: ClickKind::Single }).await.unwrap();
    let quiet = session.act(&Action::WaitForNetworkIdle { quiet_ms: Some(150), timeout_ms: Some(10_000) }).await.unwrap();
    assert!(quiet.description.contains("requests"), "{}", quiet.description);
    assert_eq!(eval::<String>(session.page(), "document.getElementById('out').innerText").await, "first\nsecond");
    session.act(&Action::WaitForSelector { selector: "#out li".into(), timeout_ms: Some(1000) }).await.unwrap();
    assert!(matches!(
        session.act(&Action::WaitForSelector { selector: "##".into(), timeout_ms: None }).await,
        Err(ActionError::BadSelector(_))
    ));
    // Uploads come only from the session's folder.
    session.act(&Action::Navigate { url: format!("{base}upload") }).await.unwrap();
    let state = session.observe().await.unwrap();
    let input = index_of(&state, "Attach a document");
    session.act(&Action::Upload { index: input, files: vec!["report.csv".into()] }).await.unwrap();
    until(session.page(), "document.title.startsWith('report.csv:')").await;
    let escape = session.act(&Action::Upload { index: input, files: vec!["../../etc/passwd".into()] }).await.unwrap_err();
    assert!(escape.to_string().contains("session's folder"), "{escape}");
    // Set-of-marks: the marked capture differs from the plain one, and leaves no trace.
    let plain = screenshot(session.page(), 80, session.screen_mask()).await.unwrap();
    let marked = annotated_screenshot(session.page(), &state, 80, session.screen_mask()).await.unwrap();
    assert_eq!(&marked[..3], &[0xFF, 0xD8, 0xFF]);
    assert_ne!(plain, marked);
    assert!(eval::<bool>(session.page(), "document.querySelector('agentd-marks') === null").await);
    let small = screenshot(session.page(), Shot { quality: 60, max_width: Some(400) }, session.screen_mask()).await.unwrap();
    assert!(small.len() < plain.len(), "scaled down");
    session.close().await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_contexts_are_reaped_and_sessions_continue() {
    use agentd_browser::*;
    let base = fixture().await;
    let settings = BrowserSettings { idle_timeout: Some(Duration::from_millis(500)), ..loopback_settings() };
    let pool = BrowserPool::start(&settings).await.unwrap();
    let mut session = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
    session.act(&Action::Navigate { url: format!("{base}keys") }).await.unwrap();
    session.observe().await.unwrap();
    for _ in 0..600 {
        if pool.browser_context_ids().await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(pool.browser_context_ids().await.unwrap().is_empty(), "the idle context was disposed of");
    let recovery = session.recover().await.unwrap().expect("recovered");
    assert_eq!(recovery.cause, RecoveryCause::Reaped);
    assert!(recovery.reopened.as_deref().unwrap().ends_with("/keys"), "{recovery:?}");
    assert_eq!(eval::<String>(session.page(), "document.title").await, "Keys");
    session.close().await.unwrap();
    assert_eq!(pool.contexts_in_use(), 0);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_browser_is_restarted_and_sessions_continue() {
    use agentd_browser::*;
    let base = fixture().await;
    let pool = BrowserPool::start(&loopback_settings()).await.unwrap();
    let mut session = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
    session.act(&Action::Navigate { url: format!("{base}keys") }).await.unwrap();
    session.observe().await.unwrap();
    // Kill the browser process (a child of this test process, on its own profile).
    let killed = kill_child_browsers();
    assert!(killed > 0, "found the browser process");
    for _ in 0..400 {
        if session.trouble().await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(session.trouble().await, Some(RecoveryCause::BrowserCrashed));
    let recovery = session.recover().await.unwrap().expect("recovered");
    assert_eq!(recovery.cause, RecoveryCause::BrowserCrashed);
    assert_eq!(eval::<String>(session.page(), "document.title").await, "Keys", "back on its page");
    let mut other = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
    assert!(other.recover().await.unwrap().is_none(), "a session leased after the restart is fine");
    other.close().await.unwrap();
    session.close().await.unwrap();
    pool.shutdown().await;
}

/// Kills the Chromium processes this process started; returns how many.
fn kill_child_browsers() -> usize {
    let me = std::process::id().to_string();
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid ...
        let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or_default();
        let ppid = after.split_whitespace().nth(1).unwrap_or_default();
        let cmdline = std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
        if ppid == me && cmdline.contains("agentd-chromium-") {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if std::process::Command::new("kill").args(["-9", &pid]).status().is_ok_and(|s| s.success()) {
                killed += 1;
            }
        }
    }
    killed
}
