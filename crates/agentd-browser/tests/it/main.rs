//! The browser runtime against a real headless Chromium and a page served on loopback.

use std::time::Duration;

use agentd_browser::{BrowserError, BrowserPool, BrowserSettings, Viewport};
use axum::Router;
use axum::response::Html;
use axum::routing::get;

const FORM: &str = r#"<!doctype html><title>Form fixture</title>
<form>
  <label for=email>Email address</label><input id=email type=email value="a@b.c">
  <label>Password <input type=password value=secret></label>
  <input aria-label="Search products" type=search placeholder="search">
  <input type=hidden name=token value=x>
  <label><input type=checkbox checked> Subscribe</label>
  <label><input type=radio name=size value=s> Small</label>
  <select aria-label="Country"><option>France</option><option selected>Japan</option></select>
  <textarea placeholder="Your message"></textarea>
  <input type=range aria-label="Volume">
  <button type=submit disabled>Send</button>
  <button style="display:none">Hidden</button>
  <button aria-expanded=false aria-controls=menu>Menu</button>
  <details><summary>More options</summary><a href="/more">Advanced</a></details>
  <div role=button tabindex=0 aria-label="Custom control" style="width:40px;height:20px"></div>
</form>
<shadow-host></shadow-host>
<iframe title="same origin frame" srcdoc="<button>Inside frame</button>" style="height:60px"></iframe>
<iframe id=cross title="cross origin frame" style="height:60px"></iframe>
<a href="/far" style="display:block;margin-top:3000px">Far below</a>
<script>
  customElements.define('shadow-host', class extends HTMLElement {
    connectedCallback() { this.attachShadow({mode: 'open'}).innerHTML = '<button>Shadow button</button>'; }
  });
  document.getElementById('cross').src = location.href.replace('127.0.0.1', 'localhost').replace(/\/form$/, '/');
</script>"#;

const ACTIONS: &str = r#"<!doctype html><title>Actions</title>
<button id=inc onclick="this.dataset.n = (+this.dataset.n || 0) + 1">Add one</button>
<input id=name aria-label="Name" value="Ada">
<input id=q aria-label="Query" onkeydown="if (event.key === 'Enter') document.title = 'searched ' + this.value">
<button disabled>Locked</button>
<div contenteditable=true aria-label="Notes">old</div>
<shadow-btn></shadow-btn>
<iframe srcdoc="<button onclick='parent.document.title = &quot;frame clicked&quot;'>Frame button</button>" style="height:60px"></iframe>
<button id=gone>Vanishing</button>
<a href="/" style="display:block;margin-top:2500px">Home far below</a>
<script>
customElements.define('shadow-btn', class extends HTMLElement {
  connectedCallback() {
    const root = this.attachShadow({mode: 'open'});
    root.innerHTML = '<button>Shadow add</button>';
    root.querySelector('button').onclick = () => { window.shadowClicks = (window.shadowClicks || 0) + 1; };
  }
});
</script>"#;

const CONTROLS: &str = r#"<!doctype html><title>Controls</title>
<select aria-label="Size" onchange="document.title = 'size ' + this.value">
  <option value=s>Small</option><option value=m>Medium</option><option value=l disabled>Large</option></select>
<label><input type=checkbox id=terms> Accept terms</label>
<div role=switch aria-checked=false aria-label="Dark mode" tabindex=0 style="width:40px;height:20px"
  onclick="this.setAttribute('aria-checked', this.getAttribute('aria-checked') !== 'true')"></div>
<button id=hov onmouseenter="this.dataset.hovered = 'yes'">Hover me</button>
<div id=box aria-label="Scroll box" role=listbox tabindex=0 style="height:100px;overflow:auto">
  <div style="height:1000px">tall</div></div>
<p style="margin-top:4000px">The hidden treasure is here</p>"#;

const KEYS: &str = r#"<!doctype html><title>Keys</title>
<input id=k aria-label="Keys field" value="hello world">
<script>
  window.log = [];
  document.getElementById('k').addEventListener('keydown', e => log.push((e.ctrlKey ? 'C-' : '') + (e.shiftKey ? 'S-' : '') + e.key));
</script>"#;

const DIALOGS: &str = r#"<!doctype html><title>Dialogs</title>
<button onclick="alert('Saved!'); document.title = 'after alert'">Alert</button>
<button onclick="document.title = confirm('Delete everything?') ? 'confirmed' : 'cancelled'">Confirm</button>
<button onclick="const a = prompt('Your name?', 'anon'); document.title = a === null ? 'no answer' : 'name ' + a">Prompt</button>"#;

const ARTICLE: &str = r#"<!doctype html><html><head><title>Rust ownership explained</title></head><body>
<nav><a href="/">Home</a> | <a href="/blog">Blog</a> | <a href="/shop">Shop</a></nav>
<div class="ad">Buy cheap watches now!</div>
<article>
  <h1>Rust ownership explained</h1>
  <p>Ownership is the set of rules that govern how a Rust program manages memory. Every value has a single
  owner, and when the owner goes out of scope the value is dropped. This makes memory safety possible
  without a garbage collector, which is one of the language's most important ideas.</p>
  <h2>The three rules</h2>
  <ul><li>Each value has an owner.</li><li>There can only be one owner at a time.</li>
  <li>When the owner goes out of scope, the value is dropped.</li></ul>
  <p>Borrowing lets code use a value without taking ownership of it, through references that the
  compiler checks so that they never outlive the data they point to. See <a href="/book">the book</a>.</p>
  <table><tr><th>Kind</th><th>Syntax</th></tr><tr><td>shared</td><td>&amp;T</td></tr><tr><td>mutable</td><td>&amp;mut T</td></tr></table>
</article>
<footer>Copyright 2026 Example Corp. All rights reserved. Privacy | Terms</footer>
</body></html>"#;

const UPLOAD: &str = r#"<!doctype html><title>Upload</title>
<label for=f>Attach a document</label><input id=f type=file style="display:none"
  onchange="this.files[0].text().then(t => { document.title = this.files[0].name + ':' + t; })">
<input id=many type=file multiple aria-label="Attach several">
<button onclick="setTimeout(() => document.body.insertAdjacentHTML('beforeend', '<p>Order confirmed</p>'), 300)">Order</button>"#;

const POPUP: &str = r#"<!doctype html><title>Opener</title>
<a href="/keys" target="_blank">Open keys in a new tab</a>"#;

async fn fixture() -> String {
    let app = Router::new()
        .route("/popup", get(|| async { Html(POPUP) }))
        .route("/upload", get(|| async { Html(UPLOAD) }))
        .route("/article", get(|| async { Html(ARTICLE) }))
        .route("/dialogs", get(|| async { Html(DIALOGS) }))
        .route("/keys", get(|| async { Html(KEYS) }))
        .route("/controls", get(|| async { Html(CONTROLS) }))
        .route("/actions", get(|| async { Html(ACTIONS) }))
        .route("/", get(|| async { Html("<!doctype html><title>fixture</title><p id=p>hello</p>") }))
        .route("/form", get(|| async { Html(FORM) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/")
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
    let settings = BrowserSettings { max_contexts: 2, warm_contexts: 0, ..BrowserSettings::default() };
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
    let settings = BrowserSettings { executable: Some("/nonexistent/chromium".into()), ..BrowserSettings::default() };
    let error = BrowserPool::start(&settings).await.err().expect("refused").to_string();
    assert!(error.contains("AGENTD_CHROME"), "{error}");
    let settings = BrowserSettings { cdp_url: Some("http://127.0.0.1:9/".into()), launch_timeout: Duration::from_secs(5), ..BrowserSettings::default() };
    let error = BrowserPool::start(&settings).await.err().expect("refused").to_string();
    assert!(error.contains("127.0.0.1:9"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_state_lists_every_interactive_element_once() {
    let url = format!("{}form", fixture().await);
    let pool = BrowserPool::start(&BrowserSettings::default()).await.unwrap();
    let session = pool.lease(Viewport { width: 1024, height: 768 }).await.unwrap();
    session.page().goto(url.as_str()).await.unwrap();
    // The cross-origin frame loads on its own; wait until its element exists.
    let _: bool = eval(session.page(), "new Promise(r => { const f = document.getElementById('cross'); if (f.src) f.onload = () => r(true); setTimeout(() => r(true), 2000); })").await;
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
        ("button", "Send"),
        ("button", "Menu"),
        ("button", "More options"),
        ("button", "Custom control"),
        ("button", "Shadow button"),
        ("button", "Inside frame"),
        ("iframe", "cross origin frame"),
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
    assert_eq!(by_name("cross origin frame").cross_origin, Some(true));
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
    let pool = BrowserPool::start(&BrowserSettings::default()).await.unwrap();
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
    let pool = BrowserPool::start(&BrowserSettings::default()).await.unwrap();
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
    let pool = BrowserPool::start(&BrowserSettings::default()).await.unwrap();
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
    let jpeg = screenshot(page, 70).await.unwrap();
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
        let settings = BrowserSettings { dialogs: policy.clone(), ..BrowserSettings::default() };
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
    let pool = BrowserPool::start(&BrowserSettings::default()).await.unwrap();
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
    let pool = BrowserPool::start(&BrowserSettings::default()).await.unwrap();
    let session = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
    let page = session.page();
    navigate(page, &format!("{base}upload"), Duration::from_secs(20)).await.unwrap();
    let state = observe(page).await.unwrap();
    let idx = |name: &str| index_of(&state, name);
    // The hidden input is not in the page state; its index comes from the page's own handle.
    let hidden: u64 = eval(page, "(() => { const A = window.__agentd; const el = document.getElementById('f'); A.ids.set(el, A.next); A.byId.set(A.next, new WeakRef(el)); return A.next++; })()").await;
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
    let pool = BrowserPool::start(&BrowserSettings::default()).await.unwrap();
    let mut victim = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
    let bystander = pool.lease(Viewport { width: 800, height: 600 }).await.unwrap();
    navigate(victim.page(), &format!("{base}keys"), Duration::from_secs(20)).await.unwrap();
    navigate(bystander.page(), &format!("{base}keys"), Duration::from_secs(20)).await.unwrap();
    let _: String = eval(victim.page(), "document.cookie = 'kept=yes'; document.cookie").await;
    assert!(!victim.replace_crashed_page().await.unwrap(), "nothing to replace yet");
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
    assert!(victim.replace_crashed_page().await.unwrap());
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
    let pool = BrowserPool::start(&BrowserSettings::default()).await.unwrap();
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
    let settings = BrowserSettings { warm_contexts: 2, ..BrowserSettings::default() };
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
