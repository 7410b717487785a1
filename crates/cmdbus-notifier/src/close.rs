//! Why a socket ends: the close codes the notifier sends and `Refused`, a refusal that carries
//! one, built from the authenticator's errors. At the bottom of the crate: the credential
//! (`access`), the key watch (`keys`) and the session all speak it.

use cmdbus_auth::AuthError;

/// Close code: no valid credential (never sent, expired, revoked).
pub(crate) const CLOSE_UNAUTHORIZED: u16 = 4401;
/// Close code: the credential lacks the `read` scope.
pub(crate) const CLOSE_FORBIDDEN: u16 = 4403;
/// Close code: a limit (sockets per tenant) is reached.
pub(crate) const CLOSE_LIMITED: u16 = 4429;

/// Close code: the server stops gracefully (RFC 6455's "Service Restart"), after it pushed the
/// final states of the commands its workers drained. Reconnect at once, to another instance
/// when there is one, and resume with `since`: this is no failure of the client's.
pub(crate) const CLOSE_RESTART: u16 = 1012;

/// A refusal that ends the socket.
#[derive(Debug, Clone, Copy)]
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
