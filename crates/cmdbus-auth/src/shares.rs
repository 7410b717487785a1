//! Fair shares of a tenant's caps, so that one end user can never exhaust what the tenant's other
//! users and its backend need. An API key (the backend) may use a whole per-tenant cap; browser
//! tokens together stop where the keys' reserve begins (`key_reserve_percent` of the cap), and
//! one token's bucket — its subject, or its set of ids — holds at most `subject_percent` of the
//! cap. The rule is here, once; the authenticator applies it to sockets and followed ids, the
//! api's quota to unfinished commands.

use std::{sync::Arc, time::Duration};

use crate::{AuthError, Credential, Principal, limits::Bound};

/// The shares of every per-tenant cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    /// Percent of a cap one browser token's subject (or id set) may hold.
    pub subject_percent: u8,
    /// Percent of a cap browser tokens can never take: kept for the tenant's API keys.
    pub key_reserve_percent: u8,
}

impl Default for Shares {
    fn default() -> Self {
        Self {
            subject_percent: 10,
            key_reserve_percent: 20,
        }
    }
}

/// What a holder may reach of a per-tenant cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ceilings {
    /// The tenant's count (everyone's together) a holding may bring it to: the whole cap for a
    /// key, the cap less the keys' reserve for a token.
    pub tenant: u64,
    /// The most a token's own bucket may hold; `None` for keys.
    pub subject: Option<u64>,
}

impl Shares {
    /// The ceilings of a principal under a per-tenant cap of `max` (`None` when unlimited).
    pub fn ceilings(self, principal: &Principal, max: u64) -> Option<Ceilings> {
        if max == 0 {
            return None;
        }
        if !matches!(principal.credential, Credential::Token { .. }) {
            return Some(Ceilings {
                tenant: max,
                subject: None,
            });
        }
        let percent = |percent: u8| max.saturating_mul(u64::from(percent.min(100))) / 100;
        let tenant = max - percent(self.key_reserve_percent);
        // A share rounds up to one, so that a small cap still admits every subject once.
        let subject = percent(self.subject_percent).max(1).min(tenant);
        Some(Ceilings {
            tenant,
            subject: Some(subject),
        })
    }

    /// The bounds a principal's holding of `what` (such as "WebSockets") counts against, under
    /// a per-tenant cap of `max` (0: unlimited); each refuses with its own reason.
    pub(crate) fn bounds(self, principal: &Principal, what: Cap, max: usize) -> Vec<Bound> {
        let Some(ceilings) = self.ceilings(principal, max as u64) else {
            return Vec::new();
        };
        let usize_of = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let mut bounds = vec![Bound {
            key: Arc::from(format!("{}:{}", what.name(), principal.tenant)),
            max: usize_of(ceilings.tenant),
            refusal: what.refusal(ceilings.subject.is_some(), false),
        }];
        if let Some(subject) = ceilings.subject {
            bounds.push(Bound {
                key: Arc::from(format!("{}:{}", what.name(), principal.limit_key)),
                max: usize_of(subject),
                refusal: what.refusal(true, true),
            });
        }
        bounds
    }
}

/// A per-tenant cap counted by the authenticator.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cap {
    /// WebSockets open at once.
    Sockets,
    /// Command ids followed on WebSockets.
    Ids,
}

impl Cap {
    fn name(self) -> &'static str {
        match self {
            Cap::Sockets => "sockets",
            Cap::Ids => "ids",
        }
    }

    /// The refusal of a holding past the tenant's ceiling (for a token or not) or, with
    /// `subject`, past a token's own share.
    fn refusal(self, token: bool, subject: bool) -> AuthError {
        let reason = match (self, token, subject) {
            (Cap::Sockets, _, true) => "too many WebSockets open for this subject",
            (Cap::Sockets, true, false) => {
                "the tenant's WebSockets for browser tokens are taken (its API keys keep a reserve)"
            }
            (Cap::Sockets, false, _) => "too many WebSockets open for this tenant",
            (Cap::Ids, _, true) => "too many ids followed for this subject",
            (Cap::Ids, true, false) => {
                "the tenant's followed ids for browser tokens are taken (its API keys keep a reserve)"
            }
            (Cap::Ids, false, _) => "too many ids followed for this tenant",
        };
        AuthError::Limited {
            code: if subject {
                "subject_limit_reached"
            } else {
                "tenant_limit_reached"
            },
            reason,
            retry_after: Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reach;

    fn token() -> Principal {
        Principal {
            reach: Reach::Subject("u1".to_owned()),
            credential: Credential::Token {
                expires_at: 0,
                key: None,
            },
            ..Principal::open()
        }
    }

    #[test]
    fn keys_reach_the_whole_cap_and_tokens_their_shares_below_the_reserve() {
        let shares = Shares::default();
        let key = Principal::open();
        assert_eq!(
            shares.ceilings(&key, 1_000),
            Some(Ceilings {
                tenant: 1_000,
                subject: None
            })
        );
        assert_eq!(
            shares.ceilings(&token(), 1_000),
            Some(Ceilings {
                tenant: 800,
                subject: Some(100)
            })
        );
        assert_eq!(shares.ceilings(&token(), 0), None, "unlimited");
        let small = shares.ceilings(&token(), 3).expect("capped");
        assert_eq!(small.subject, Some(1), "a share rounds up to one");
        let none = Shares {
            subject_percent: 50,
            key_reserve_percent: 100,
        };
        assert_eq!(
            none.ceilings(&token(), 10),
            Some(Ceilings {
                tenant: 0,
                subject: Some(0)
            }),
            "a reserve of everything leaves tokens nothing"
        );
    }
}
