//! Page state for the LLM: what is on the page and what can be acted on.
//!
//! [`observe`] runs one script in the page (`page_state.js`) that walks the document, its
//! open shadow roots and same-origin iframes, and returns every visible interactive element
//! with a stable index (kept in a WeakMap the page cannot see, so the same element keeps its
//! index across observations), its role, accessible name, value and states, and how far it
//! lies outside the viewport. Cross-origin iframes are listed as such; reading inside them
//! goes through their own CDP target (next step).

use chromiumoxide::Page;
use serde::{Deserialize, Serialize};

use crate::BrowserError;

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
    /// A cross-origin iframe, not yet looked into.
    #[serde(default)]
    pub cross_origin: Option<bool>,
    /// Pixels above the viewport (0 when visible).
    pub above: i64,
    /// Pixels below the viewport.
    pub below: i64,
    /// Pixels to the side of the viewport.
    pub beside: i64,
}

impl Element {
    /// True when at least part of it is in the viewport.
    pub fn in_viewport(&self) -> bool {
        self.above == 0 && self.below == 0 && self.beside == 0
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
    /// Scroll position and size.
    pub scroll: Scroll,
    /// Interactive elements in document order.
    pub elements: Vec<Element>,
}

/// Reads the page's state.
pub async fn observe(page: &Page) -> Result<PageState, BrowserError> {
    let value: serde_json::Value = page.evaluate(COLLECTOR).await?.into_value().map_err(|e| {
        BrowserError::Script(format!("the page-state script returned nothing usable: {e}"))
    })?;
    serde_json::from_value(value).map_err(|e| BrowserError::Script(format!("unexpected page state: {e}")))
}

impl PageState {
    /// The compact text an LLM reads: one line per element, `[index] role "name"` and what
    /// matters about it; elements outside the viewport say where.
    pub fn render(&self) -> String {
        let mut out = format!(
            "URL: {}\nTitle: {}\nScroll: {}px above, {}px below\n",
            self.url,
            self.title,
            self.scroll.above(),
            self.scroll.below()
        );
        for e in &self.elements {
            out.push_str(&format!("[{}] {} \"{}\"", e.index, e.role, e.name));
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
                out.push_str(" (cross-origin frame)");
            }
            if e.below > 0 {
                out.push_str(&format!(" (↓ {}px)", e.below));
            } else if e.above > 0 {
                out.push_str(&format!(" (↑ {}px)", e.above));
            } else if e.beside > 0 {
                out.push_str(&format!(" (→ {}px)", e.beside));
            }
            out.push('\n');
        }
        out
    }
}
