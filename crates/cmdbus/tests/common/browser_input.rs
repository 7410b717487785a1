//! Input for the browser tests beyond clicks: choosing in a select, typing into a field, pressing
//! a key on the focused element, and reading the rows shown. Part of the driver of
//! `browser.rs`.

#![allow(dead_code)] // the browser tests use their own parts of it

use crate::driver::Browser;

impl Browser {
    /// Chooses `value` in the select `css`, like a person would.
    pub(crate) async fn choose(&self, css: &str, value: &str) {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no {css}: {error}"))
            .select_by_value(value)
            .await
            .unwrap_or_else(|error| panic!("choose {value} in {css}: {error}"));
    }

    /// Types `text` into the field `css` (cleared first).
    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let field = self
            .client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no {css}: {error}"));
        field.clear().await.expect("clear the field");
        field.send_keys(text).await.expect("type");
    }

    /// Presses and releases `key` on the focused element, like a keyboard.
    pub(crate) async fn press(&self, key: char) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let keys = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client
            .perform_actions(keys)
            .await
            .expect("press a key");
    }

    /// The ids of the rows shown, in order.
    pub(crate) async fn row_ids(&self) -> Vec<String> {
        let ids = self
            .js(
                r#"return [...document.querySelectorAll('[data-testid="row"]')].map((r) => r.dataset.id);"#,
                vec![],
            )
            .await;
        serde_json::from_value(ids).expect("row ids")
    }
}
