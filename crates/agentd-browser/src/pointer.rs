//! Actions by screen position, for agents that work from screenshots (computer-use models):
//! move, drag, wheel-scroll at a point, type into whatever has focus, and the screen image
//! such a model looks at.

use std::time::Instant;

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::input::{
    DispatchMouseEventParams, DispatchMouseEventType, InsertTextParams, MouseButton,
};
use chromiumoxide::layout::Point;

use crate::BrowserError;
use crate::actions::{ActionError, ActionOutcome, in_viewport};
use crate::waits::{arrival, follow_navigation};

fn mouse(kind: DispatchMouseEventType, x: f64, y: f64) -> Result<DispatchMouseEventParams, ActionError> {
    Ok(DispatchMouseEventParams::builder().r#type(kind).x(x).y(y).build().map_err(BrowserError::Script)?)
}

/// Moves the mouse to (`x`, `y`) (hover effects follow).
pub async fn move_to(page: &Page, x: f64, y: f64) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    in_viewport(page, &[(x, y)]).await?;
    page.move_mouse(Point { x, y }).await?;
    Ok(ActionOutcome { action: "move", description: format!("moved the mouse to ({x}, {y})"), elapsed: started.elapsed() })
}

/// Presses the left button at the first point of `path`, moves through the others, and
/// releases it at the last.
pub async fn drag(page: &Page, path: &[(f64, f64)]) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    let [(x0, y0), .., (x1, y1)] = *path else {
        return Err(ActionError::BadArguments("drag: the path needs at least two points".into()));
    };
    in_viewport(page, path).await?;
    let button = |mut event: DispatchMouseEventParams| {
        event.button = Some(MouseButton::Left);
        event.buttons = Some(1);
        event.click_count = Some(1);
        event
    };
    page.move_mouse(Point { x: x0, y: y0 }).await?;
    page.execute(button(mouse(DispatchMouseEventType::MousePressed, x0, y0)?)).await?;
    for &(x, y) in &path[1..] {
        page.execute(button(mouse(DispatchMouseEventType::MouseMoved, x, y)?)).await?;
    }
    page.execute(button(mouse(DispatchMouseEventType::MouseReleased, x1, y1)?)).await?;
    Ok(ActionOutcome {
        action: "drag",
        description: format!("dragged from ({x0}, {y0}) to ({x1}, {y1})"),
        elapsed: started.elapsed(),
    })
}

/// Turns the mouse wheel at (`x`, `y`) by `dx`, `dy` CSS pixels (positive: right, down), so
/// that whatever is under the point scrolls, as it would for a person.
pub async fn scroll_at(page: &Page, x: f64, y: f64, dx: f64, dy: f64) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    in_viewport(page, &[(x, y)]).await?;
    let mut wheel = mouse(DispatchMouseEventType::MouseWheel, x, y)?;
    wheel.delta_x = Some(dx);
    wheel.delta_y = Some(dy);
    page.execute(wheel).await?;
    // The wheel scrolls on the compositor; one frame later the page has moved.
    let _: f64 = crate::scope::Scope::TOP
        .eval(page, "new Promise(r => requestAnimationFrame(() => r(window.scrollY)))".into())
        .await?;
    Ok(ActionOutcome {
        action: "scroll",
        description: format!("scrolled by ({dx}, {dy}) at ({x}, {y})"),
        elapsed: started.elapsed(),
    })
}

/// Types `text` into the focused element; each line break is an Enter key press (which may
/// submit a form: the navigation it starts is waited for).
pub async fn type_focused(page: &Page, text: &str) -> Result<ActionOutcome, ActionError> {
    let started = Instant::now();
    let mut navigated = None;
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            let enter = async { crate::keys::press_keys(page, &["Enter"]).await.map(|_| ()) };
            navigated = follow_navigation(page, enter).await?.or(navigated);
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        if !line.is_empty() {
            page.execute(InsertTextParams::new(line)).await?;
        }
    }
    let chars = text.chars().count();
    Ok(ActionOutcome {
        action: "type",
        description: format!("typed {chars} characters into the focused element{}", arrival(&navigated)),
        elapsed: started.elapsed(),
    })
}

/// A PNG of the viewport, scaled to `width` pixels wide (the height in proportion): what a
/// computer-use model is shown. Whatever shows one of `mask`'s values is masked first.
pub async fn screen_png(page: &Page, width: u32, mask: &crate::ScreenMask) -> Result<Vec<u8>, ActionError> {
    use chromiumoxide::cdp::browser_protocol::page::{CaptureScreenshotFormat, Viewport as Clip};
    use chromiumoxide::page::ScreenshotParams;
    let view = page.layout_metrics().await?.css_visual_viewport;
    let mut params = ScreenshotParams::builder().format(CaptureScreenshotFormat::Png);
    if (view.client_width - f64::from(width)).abs() >= 0.5 && view.client_width > 0.0 {
        let scale = f64::from(width.max(1)) / view.client_width;
        params = params.clip(Clip { x: view.page_x, y: view.page_y, width: view.client_width, height: view.client_height, scale });
    }
    crate::mask::hide_secrets(page, mask).await?;
    Ok(page.screenshot(params.build()).await?)
}
