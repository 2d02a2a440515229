//! Pressing keys and combinations (`Enter`, `Control+A`, `Shift+Tab`) through CDP key events.

use std::time::Instant;

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::input::{DispatchKeyEventParams, DispatchKeyEventType};

use crate::BrowserError;
use crate::actions::{ActionError, ActionOutcome};

/// A key as CDP needs it: key name, physical code, Windows key code, text it types.
#[derive(Debug)]
struct Key {
    key: String,
    code: String,
    key_code: i64,
    text: Option<String>,
}

/// Modifier bits of CDP key events.
fn modifier_bit(name: &str) -> Option<i64> {
    match name.to_ascii_lowercase().as_str() {
        "alt" => Some(1),
        "control" | "ctrl" => Some(2),
        "meta" | "cmd" | "command" | "super" | "win" => Some(4),
        "shift" => Some(8),
        _ => None,
    }
}

fn named_key(name: &str) -> Option<Key> {
    // X keysym spellings too (`Page_Down`, `KP_Enter`, `super`): computer-use models send them.
    let folded = name.to_ascii_lowercase().replace('_', "");
    let (key, code, key_code, text): (&str, &str, i64, Option<&str>) = match folded.as_str() {
        "enter" | "return" | "kpenter" => ("Enter", "Enter", 13, Some("\r")),
        "tab" => ("Tab", "Tab", 9, None),
        "escape" | "esc" => ("Escape", "Escape", 27, None),
        "backspace" => ("Backspace", "Backspace", 8, None),
        "delete" => ("Delete", "Delete", 46, None),
        "space" => (" ", "Space", 32, Some(" ")),
        "arrowup" | "up" => ("ArrowUp", "ArrowUp", 38, None),
        "arrowdown" | "down" => ("ArrowDown", "ArrowDown", 40, None),
        "arrowleft" | "left" => ("ArrowLeft", "ArrowLeft", 37, None),
        "arrowright" | "right" => ("ArrowRight", "ArrowRight", 39, None),
        "home" => ("Home", "Home", 36, None),
        "end" => ("End", "End", 35, None),
        "pageup" => ("PageUp", "PageUp", 33, None),
        "pagedown" => ("PageDown", "PageDown", 34, None),
        "control" | "ctrl" => ("Control", "ControlLeft", 17, None),
        "shift" => ("Shift", "ShiftLeft", 16, None),
        "alt" => ("Alt", "AltLeft", 18, None),
        "meta" | "cmd" | "command" | "super" | "win" => ("Meta", "MetaLeft", 91, None),
        "insert" => ("Insert", "Insert", 45, None),
        _ => return function_key(name).or_else(|| character_key(name)),
    };
    Some(Key {
        key: key.into(),
        code: code.into(),
        key_code,
        text: text.map(Into::into),
    })
}

fn function_key(name: &str) -> Option<Key> {
    let n: i64 = name.strip_prefix(['F', 'f'])?.parse().ok().filter(|n| (1..=12).contains(n))?;
    Some(Key { key: format!("F{n}"), code: format!("F{n}"), key_code: 111 + n, text: None })
}

fn character_key(name: &str) -> Option<Key> {
    let mut chars = name.chars();
    let c = chars.next()?;
    if chars.next().is_some() {
        return None;
    }
    let upper = c.to_ascii_uppercase();
    let (code, key_code) = if c.is_ascii_alphabetic() {
        (format!("Key{upper}"), upper as i64)
    } else if c.is_ascii_digit() {
        (format!("Digit{c}"), c as i64)
    } else {
        (String::new(), 0)
    };
    Some(Key { key: c.to_string(), code, key_code, text: Some(c.to_string()) })
}

/// Parses `"Control+Shift+K"` into modifier bits and the final key.
fn parse_combo(combo: &str) -> Result<(i64, Vec<Key>, Key), String> {
    let parts: Vec<&str> = combo.split('+').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("`{combo}` is not a key or combination such as Enter or Control+A"));
    }
    let (last, mods) = parts.split_last().ok_or_else(|| "no key given".to_owned())?;
    let mut bits = 0;
    let mut held = Vec::new();
    for m in mods {
        let bit = modifier_bit(m).ok_or_else(|| format!("`{m}` is not a modifier (Control, Shift, Alt, Meta)"))?;
        bits |= bit;
        held.push(named_key(m).ok_or_else(|| format!("unknown key `{m}`"))?);
    }
    let key = named_key(last).ok_or_else(|| format!("unknown key `{last}`"))?;
    Ok((bits, held, key))
}

async fn send(page: &Page, kind: DispatchKeyEventType, key: &Key, modifiers: i64, with_text: bool) -> Result<(), ActionError> {
    let mut event = DispatchKeyEventParams::builder()
        .r#type(kind)
        .key(key.key.clone())
        .code(key.code.clone())
        .windows_virtual_key_code(key.key_code)
        .native_virtual_key_code(key.key_code)
        .modifiers(modifiers);
    if let Some(text) = key.text.as_ref().filter(|_| with_text) {
        event = event.text(text.clone());
    }
    page.execute(event.build().map_err(BrowserError::Script)?).await?;
    Ok(())
}

/// Presses each key or combination in turn on the focused element.
pub async fn press_keys(page: &Page, combos: &[&str]) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    for combo in combos {
        let (bits, held, key) = parse_combo(combo).map_err(ActionError::BadKey)?;
        for m in &held {
            send(page, DispatchKeyEventType::RawKeyDown, m, bits, false).await?;
        }
        // Text is typed only without Control/Alt/Meta (a shortcut types nothing).
        let types = bits & (1 | 2 | 4) == 0;
        let down = if types && key.text.is_some() { DispatchKeyEventType::KeyDown } else { DispatchKeyEventType::RawKeyDown };
        send(page, down, &key, bits, types).await?;
        send(page, DispatchKeyEventType::KeyUp, &key, bits, false).await?;
        for m in held.iter().rev() {
            send(page, DispatchKeyEventType::KeyUp, m, 0, false).await?;
        }
    }
    Ok(ActionOutcome {
        action: "press",
        description: format!("pressed {}", combos.join(", ")),
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combos_parse_with_clear_errors() {
        let (bits, held, key) = parse_combo("Control+Shift+k").unwrap();
        assert_eq!((bits, held.len(), key.code.as_str()), (10, 2, "KeyK"));
        assert_eq!(parse_combo("F5").unwrap().2.key_code, 116);
        assert!(parse_combo("Hyper+A").unwrap_err().contains("modifier"));
        assert!(parse_combo("Control+").unwrap_err().contains("not a key"));
        assert!(parse_combo("Banana").unwrap_err().contains("unknown key"));
        // Every modifier name is also a key of its own.
        assert_eq!(parse_combo("Cmd+a").unwrap().0, 4);
        assert_eq!(parse_combo("Command").unwrap().2.key, "Meta");
        // X keysym spellings, as computer-use models send them.
        assert_eq!(parse_combo("ctrl+Page_Down").unwrap().2.key, "PageDown");
        assert_eq!(parse_combo("super+KP_Enter").unwrap().0, 4);
    }
}
