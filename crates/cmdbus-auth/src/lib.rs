//! Who is calling and what they may do. A caller presents an API key (a long random secret that
//! belongs to a tenant and carries scopes; only its hash is stored) or a short-lived browser
//! token signed by the application's backend (read-only unless stated, limited to one subject's
//! commands or to named ids). Both become a [`Principal`]; every query the roles make is scoped
//! by it. The [`Authenticator`] also holds the per-caller limits: request rate, concurrent
//! long-polls, WebSockets and followed ids per tenant with fair shares for each end user,
//! failed authentications per address. And since every refusal starts here, the one
//! problem+json body of the HTTP API and the request id it quotes live here too.
//!
//! Layout. `authenticator.rs` (`Authenticator`) is what the roles call: it reads a bearer value
//! as a key (`key.rs`: the key format, minting, hashing, `issue_key`) or a token (`token.rs`:
//! HS256 sign and verify), and returns a `Principal` (`principal.rs`: tenant, scopes, reach);
//! keys are read through `lookup.rs` (the cache and its two lanes, known and unknown keys); it
//! also holds the `limits.rs` budgets and slots, whose per-tenant bounds `shares.rs` sets (the
//! fair-share rule, also used by the api's quota). `error.rs` is the one problem+json response,
//! quoting the id from `request_id.rs`. Keys are stored through `cmdbus-store`.

mod authenticator;
mod error;
mod key;
mod limits;
mod lookup;
mod principal;
pub mod request_id;
mod shares;
mod token;

pub use authenticator::{AuthConfig, Authenticator};
pub use error::{AuthError, problem_response};
pub use key::{
    IssueError, MintedKey, generate_key, hash_key, is_well_formed_key, issue_key, looks_like_key,
    shown_prefix, valid_tenant,
};
pub use limits::{Budget, Slot};
pub use principal::{Credential, Principal, Reach, Scope, Scopes};
pub use shares::{Ceilings, Shares};
pub use token::{AUDIENCE, Audience, Claims, ISSUER, LEEWAY_SECS, TokenError, sign, verify};
