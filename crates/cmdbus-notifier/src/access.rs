//! A connection's credential: who it acts for, until when, and the tenant socket slot it
//! holds. A browser authenticates with its first message and renews a token on the same socket
//! before it expires; a key that is revoked, or a token that expires unrenewed, ends the
//! socket with close code 4401 — the client reconnects and resumes with its cursor.

use cmdbus_auth::{AuthError, Principal, Scope, Slot};
use std::time::Duration;
use tokio::time::Instant;

/// Close code: no valid credential (never sent, expired, revoked).
pub(crate) const CLOSE_UNAUTHORIZED: u16 = 4401;
/// Close code: the credential lacks the `read` scope.
pub(crate) const CLOSE_FORBIDDEN: u16 = 4403;
/// Close code: a limit (sockets per tenant) is reached.
pub(crate) const CLOSE_LIMITED: u16 = 4429;

/// How long a new socket may stay unauthenticated.
pub(crate) const AUTH_WITHIN: Duration = Duration::from_secs(10);
/// How often a live socket's key is checked for revocation.
pub(crate) const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// A refusal that ends the socket.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
}

impl From<AuthError> for Refused {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Unauthorized(reason) => Refused {
                code: CLOSE_UNAUTHORIZED,
                reason,
            },
            AuthError::Forbidden(_) => Refused {
                code: CLOSE_FORBIDDEN,
                reason: "this credential lacks the read scope",
            },
            AuthError::Limited { reason, .. } => Refused {
                code: CLOSE_LIMITED,
                reason,
            },
            AuthError::Unavailable => Refused {
                code: 1011,
                reason: "cannot check credentials now; reconnect",
            },
        }
    }
}

/// The connection's credential, once it has one.
#[derive(Debug, Default)]
pub(crate) struct Access {
    principal: Option<Principal>,
    slot: Option<Slot>,
    /// When to tell the client to renew its token; `None` for keys, or once told.
    renew_at: Option<Instant>,
}

impl Access {
    pub(crate) fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// Takes a principal: the first one takes a socket slot of its tenant; a later one (a
    /// renewed token) must be of the same tenant.
    pub(crate) fn grant(
        &mut self,
        auth: &cmdbus_auth::Authenticator,
        principal: Principal,
    ) -> Result<(), Refused> {
        if !principal.has(Scope::Read) {
            return Err(AuthError::Forbidden("read").into());
        }
        match &self.principal {
            Some(current) if current.tenant != principal.tenant => {
                return Err(Refused {
                    code: CLOSE_FORBIDDEN,
                    reason: "a socket stays with one tenant",
                });
            }
            Some(_) => {}
            None => self.slot = Some(auth.socket(&principal)?),
        }
        // Told to renew half a minute before expiry (half its life, for a short token).
        self.renew_at = principal.expires_at().map(|expires_at| {
            let left = Duration::from_secs(
                u64::try_from(expires_at - chrono::Utc::now().timestamp()).unwrap_or(0),
            );
            Instant::now() + left.saturating_sub((left / 2).min(Duration::from_secs(30)))
        });
        self.principal = Some(principal);
        Ok(())
    }

    /// When the client should be told to renew its token.
    pub(crate) fn renew_at(&self) -> Option<Instant> {
        self.renew_at
    }

    pub(crate) fn renew_sent(&mut self) {
        self.renew_at = None;
    }

    /// Ends the socket if its key was revoked or its token expired.
    pub(crate) async fn recheck(&self, auth: &cmdbus_auth::Authenticator) -> Result<(), Refused> {
        match &self.principal {
            Some(principal) => Ok(auth.still_valid(principal).await?),
            None => Ok(()),
        }
    }
}
