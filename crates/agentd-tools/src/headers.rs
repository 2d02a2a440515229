//! Request headers from templates (HTTP tools and streamable-HTTP MCP servers).

use std::collections::BTreeMap;

use reqwest::header::{HeaderName, HeaderValue};

use crate::error::ToolError;
use crate::mask::Masker;
use crate::template::Scope;

/// Each header's value rendered and checked. A value holding a private variable is marked
/// sensitive, which keeps it out of reqwest's and hyper's `Debug` output. An error names the
/// header, never its value.
pub(crate) fn render(
    headers: &BTreeMap<String, String>,
    scope: &Scope<'_>,
    masker: &Masker,
) -> Result<Vec<(HeaderName, HeaderValue)>, ToolError> {
    let mut rendered = Vec::with_capacity(headers.len());
    for (name, template) in headers {
        let place = format!("header {name}");
        let header_name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| ToolError::InvalidTemplate {
            place: place.clone(),
            reason: "not a valid header name".into(),
        })?;
        let value = scope.render_text(template, &place)?;
        let mut header_value = HeaderValue::from_str(value.trim()).map_err(|_| ToolError::InvalidTemplate {
            place,
            reason: "the value has characters a header cannot carry (a line break or a control character)".into(),
        })?;
        header_value.set_sensitive(masker.mask(&value) != value);
        rendered.push((header_name, header_value));
    }
    Ok(rendered)
}
