//! Page state for the LLM: what is on the page and what can be acted on.
//!
//! [`observe`] runs one script in the page (`page_state.js`) that walks the document, its
//! open shadow roots and same-origin iframes, and returns every visible interactive element
//! with a stable index (kept in a WeakMap, so the same element keeps its index across
//! observations), its role, accessible name, value and states, how far it lies outside the
//! viewport, and the visible text between elements. Cross-origin iframes are read by running
//! the script again in their own context (see [`crate::scope`]). [`PageState::render`] turns
//! it into the compact text an LLM reads, within a token budget.

use std::time::{Duration, Instant};

use chromiumoxide::Page;
use serde::{Deserialize, Serialize};

use crate::BrowserError;
use crate::session::TabInfo;
use crate::scope::Scope;

const COLLECTOR: &str = include_str!("page_state.js");

/// One interactive element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Element {
    /// Stable index, the handle actions use.
    pub index: u64,
    /// ARIA role (explicit, or implied by the tag).
    pub role: String,
    /// Accessible name (aria-label, labelledby, label, text, placeholder, title, alt).
    pub name: String,
    /// Tag name.
    pub tag: String,
    /// Input type, when it is not plain text.
    #[serde(default)]
    pub r#type: Option<String>,
    /// Current value (passwords masked).
    #[serde(default)]
    pub value: Option<String>,
    /// Checkbox/radio/aria-checked state.
    #[serde(default)]
    pub checked: Option<bool>,
    /// aria-selected.
    #[serde(default)]
    pub selected: Option<bool>,
    /// Disabled.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// aria-expanded or an open `<details>`.
    #[serde(default)]
    pub expanded: Option<bool>,
    /// Link target.
    #[serde(default)]
    pub href: Option<String>,
    /// Position in the top document's viewport coordinates (CSS pixels).
    pub x: i64,
    /// Top edge.
    pub y: i64,
    /// Width.
    pub w: i64,
    /// Height.
    pub h: i64,
    /// Iframe depth (0: the top document).
    pub frame: u32,
    /// A cross-origin iframe whose document could not be read (an attached browser that
    /// keeps such frames in their own process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_origin: Option<bool>,
    /// Pixels above the viewport (0 when visible).
    pub above: i64,
    /// Pixels below the viewport.
    pub below: i64,
    /// Pixels to the side of the viewport.
    pub beside: i64,
    /// Origin of a cross-origin iframe's content box (top viewport coordinates).
    #[serde(default, skip_serializing)]
    fx: Option<f64>,
    /// See `fx`.
    #[serde(default, skip_serializing)]
    fy: Option<f64>,
}

impl Element {
    /// True when at least part of it is in the viewport.
    pub fn in_viewport(&self) -> bool {
        self.above == 0 && self.below == 0 && self.beside == 0
    }

    /// How far outside the viewport it lies (0 when visible).
    pub fn distance(&self) -> i64 {
        self.above + self.below + self.beside
    }
}

/// A block of visible text between elements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextBlock {
    /// The text, whitespace collapsed and long blocks shortened.
    pub text: String,
    /// How many elements come before it in document order.
    pub after: usize,
    /// Pixels above the viewport (0 when visible).
    pub above: i64,
    /// Pixels below the viewport.
    pub below: i64,
    /// Pixels to the side.
    pub beside: i64,
}

impl TextBlock {
    /// How far outside the viewport it lies (0 when visible).
    pub fn distance(&self) -> i64 {
        self.above + self.below + self.beside
    }
}

/// Scroll position and page size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scroll {
    /// Horizontal offset.
    pub x: i64,
    /// Vertical offset.
    pub y: i64,
    /// Scrollable width.
    pub width: i64,
    /// Scrollable height.
    pub height: i64,
    /// Viewport width.
    pub viewport_width: i64,
    /// Viewport height.
    pub viewport_height: i64,
}

impl Scroll {
    /// Pixels of page above the viewport.
    pub fn above(&self) -> i64 {
        self.y.max(0)
    }

    /// Pixels of page below the viewport.
    pub fn below(&self) -> i64 {
        (self.height - self.y - self.viewport_height).max(0)
    }
}

/// What the page looks like to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageState {
    /// Current URL.
    pub url: String,
    /// Document title.
    pub title: String,
    /// The session's open tabs (filled in by [`crate::SessionBrowser::observe`]).
    #[serde(default)]
    pub tabs: Vec<TabInfo>,
    /// What was refused on the session's way out since the last observation, a sentence each
    /// ("refused by the egress policy: 10.0.0.1 is a private address"; filled in by
    /// [`crate::SessionBrowser::observe`]).
    #[serde(default)]
    pub refused: Vec<String>,
    /// Scroll position and size.
    pub scroll: Scroll,
    /// Interactive elements in document order.
    pub elements: Vec<Element>,
    /// Visible text between the elements, in document order.
    pub texts: Vec<TextBlock>,
    /// How long reading the page took.
    #[serde(with = "millis")]
    pub elapsed: Duration,
}

/// What one run of the collector returns.
#[derive(Deserialize)]
struct Collected {
    url: String,
    title: String,
    next: u64,
    scroll: Scroll,
    items: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Item {
    Element(Box<Element>),
    Text { text: String, above: i64, below: i64, beside: i64 },
}

const COLLECTOR_DEPTH: u32 = 4;

/// Reads the page's state: its top document, then each cross-origin iframe in its own context.
pub async fn observe(page: &Page) -> Result<PageState, BrowserError> {
    let started = Instant::now();
    let top = collect(page, Scope::TOP, serde_json::json!({ "next": 0 })).await?;
    let (vw, vh) = (top.scroll.viewport_width, top.scroll.viewport_height);
    let mut next = top.next;
    let mut items = Vec::with_capacity(top.items.len());
    let mut pending: Vec<(Scope, Item)> = top.items.into_iter().rev().map(|i| (Scope::TOP, i)).collect();
    let mut read_frames = false;
    // Depth-first, in document order: a readable cross-origin frame's items take its place.
    while let Some((scope, item)) = pending.pop() {
        if let Item::Element(frame) = &item
            && frame.cross_origin == Some(true)
            && frame.frame < COLLECTOR_DEPTH
            && let Some(inner) = scope.frame_of(page, frame.index).await?
        {
            let opts = serde_json::json!({
                "next": next, "ox": frame.fx, "oy": frame.fy, "frame": frame.frame + 1, "vw": vw, "vh": vh,
            });
            // A frame that is navigating or gone has nothing to show; the placeholder stays.
            if let Ok(collected) = collect(page, inner, opts).await {
                next = next.max(collected.next);
                read_frames = true;
                pending.extend(collected.items.into_iter().rev().map(|i| (inner, i)));
                continue;
            }
        }
        items.push(item);
    }
    if read_frames {
        // The top document numbers its new elements above everything the frames handed out.
        Scope::TOP.eval::<u64>(page, format!("window.__agentd.next = Math.max(window.__agentd.next, {next})")).await?;
    }
    let mut elements = Vec::new();
    let mut texts: Vec<TextBlock> = Vec::new();
    for item in items {
        match item {
            Item::Element(element) => elements.push(*element),
            Item::Text { text, above, below, beside } => {
                // Text that only repeats the element next to it (a label, say) adds nothing.
                let repeats = |e: Option<&Element>| e.is_some_and(|e| e.name == text);
                if repeats(elements.last()) || texts.last().is_some_and(|t| t.text == text && t.after == elements.len()) {
                    continue;
                }
                texts.push(TextBlock { text, after: elements.len(), above, below, beside });
            }
        }
    }
    // A label before its element repeats the element's name too.
    texts.retain(|t| elements.get(t.after).is_none_or(|e| e.name != t.text));
    Ok(PageState {
        url: top.url,
        title: top.title,
        tabs: Vec::new(),
        refused: Vec::new(),
        scroll: top.scroll,
        elements,
        texts,
        elapsed: started.elapsed(),
    })
}

async fn collect(page: &Page, scope: Scope, opts: serde_json::Value) -> Result<Collected, BrowserError> {
    let value: serde_json::Value = scope.eval(page, format!("({COLLECTOR})({opts})")).await?;
    serde_json::from_value(value).map_err(|e| BrowserError::Script(format!("unexpected page state: {e}")))
}

/// Page-state size budget when none is given, in tokens (4 characters each).
pub const DEFAULT_TOKEN_BUDGET: usize = 6_000;

impl PageState {
    /// The compact text an LLM reads, within [`DEFAULT_TOKEN_BUDGET`].
    pub fn render(&self) -> String {
        self.render_within(DEFAULT_TOKEN_BUDGET)
    }

    /// The compact text an LLM reads: tabs, scroll, then one line per element
    /// (`[index] role "name"` and what matters about it; elements outside the viewport say
    /// where) with the visible text between them. Over `budget` tokens (chars / 4), the least
    /// useful lines go first (text, then elements, farthest from the viewport first; elements
    /// in view are always kept), and a last line says what was left out.
    pub fn render_within(&self, budget: usize) -> String {
        let mut head = format!("URL: {}\nTitle: {}\n", self.url, self.title);
        if self.tabs.len() > 1 {
            head.push_str("Tabs:\n");
            for tab in &self.tabs {
                let mark = if tab.active { " (active)" } else { "" };
                head.push_str(&format!("  {} \"{}\" {}{mark}\n", tab.id, tab.title, tab.url));
            }
        }
        for refusal in &self.refused {
            head.push_str(&format!("Blocked: {refusal}\n"));
        }
        head.push_str(&format!(
            "Scroll: {}px above, {}px below (viewport {}x{})\n",
            self.scroll.above(),
            self.scroll.below(),
            self.scroll.viewport_width,
            self.scroll.viewport_height
        ));
        let elements: Vec<String> = self.elements.iter().map(element_line).collect();
        let texts: Vec<String> = self.texts.iter().map(|t| format!("{}\n", t.text)).collect();
        let budget_chars = budget.saturating_mul(4);
        let mut total = head.len() + elements.iter().map(String::len).sum::<usize>() + texts.iter().map(String::len).sum::<usize>();
        let mut keep_element = vec![true; elements.len()];
        let mut keep_text = vec![true; texts.len()];
        let (mut dropped_elements, mut dropped_texts) = (0, 0);
        if total > budget_chars {
            // The note saying what was trimmed must fit too.
            let budget_chars = budget_chars.saturating_sub(160);
            // Least useful first: off-screen text, off-screen elements, then text in view
            // (farthest first; in-view text from the end of the page back).
            let mut order: Vec<(u8, i64, bool, usize)> = Vec::new();
            for (i, t) in self.texts.iter().enumerate() {
                order.push(if t.distance() > 0 { (0, -t.distance(), false, i) } else { (2, -(i as i64), false, i) });
            }
            for (i, e) in self.elements.iter().enumerate().filter(|(_, e)| !e.in_viewport()) {
                order.push((1, -e.distance(), true, i));
            }
            order.sort();
            for (_, _, is_element, i) in order {
                if total <= budget_chars {
                    break;
                }
                if is_element {
                    keep_element[i] = false;
                    total -= elements[i].len();
                    dropped_elements += 1;
                } else {
                    keep_text[i] = false;
                    total -= texts[i].len();
                    dropped_texts += 1;
                }
            }
        }
        let mut out = head;
        let mut next_text = 0;
        for (i, line) in elements.iter().enumerate() {
            while next_text < texts.len() && self.texts[next_text].after <= i {
                if keep_text[next_text] {
                    out.push_str(&texts[next_text]);
                }
                next_text += 1;
            }
            if keep_element[i] {
                out.push_str(line);
            }
        }
        for (t, line) in texts.iter().enumerate().skip(next_text) {
            if keep_text[t] {
                out.push_str(line);
            }
        }
        if dropped_elements + dropped_texts > 0 {
            out.push_str(&format!(
                "[page state trimmed to {budget} tokens: left out {dropped_texts} blocks of text and {dropped_elements} elements \
                 outside the viewport; scroll or extract the page to see them]\n"
            ));
        }
        out
    }

    /// The rendered size in tokens (characters / 4), as an LLM budget counts it.
    pub fn tokens(rendered: &str) -> usize {
        rendered.chars().count().div_ceil(4)
    }
}

fn element_line(e: &Element) -> String {
    let mut out = format!("[{}] {} \"{}\"", e.index, e.role, e.name);
    if let Some(t) = &e.r#type {
        out.push_str(&format!(" type={t}"));
    }
    if let Some(v) = e.value.as_deref().filter(|v| !v.is_empty()) {
        out.push_str(&format!(" value=\"{v}\""));
    }
    for (flag, on) in [("checked", e.checked), ("selected", e.selected), ("disabled", e.disabled), ("expanded", e.expanded)] {
        match on {
            Some(true) => out.push_str(&format!(" {flag}")),
            Some(false) if flag == "checked" || flag == "expanded" => out.push_str(&format!(" not-{flag}")),
            _ => {}
        }
    }
    if let Some(href) = &e.href {
        out.push_str(&format!(" -> {href}"));
    }
    if e.cross_origin == Some(true) {
        out.push_str(" (cross-origin frame, not readable)");
    }
    if e.below > 0 {
        out.push_str(&format!(" (↓ {}px)", e.below));
    } else if e.above > 0 {
        out.push_str(&format!(" (↑ {}px)", e.above));
    } else if e.beside > 0 {
        out.push_str(&format!(" (→ {}px)", e.beside));
    }
    out.push('\n');
    out
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
