//! Classification of LDAP results and transport failures into connector error kinds and retry
//! statuses (SPEC §7), keeping Active Directory's diagnostic text.
//!
//! ```
//! use autoprov_ad::errors::classify;
//! use autoprov_connector::{ErrorKind, ErrorStatus};
//! let c = classify(19, "0000052D: Constraint violation - check_password_restrictions");
//! assert_eq!((c.kind, c.status), (ErrorKind::InvalidOrder, ErrorStatus::Permanent));
//! assert!(c.explanation.contains("password policy"));
//! let c = classify(51, "");
//! assert!(c.status == ErrorStatus::Temporary);
//! ```

use autoprov_connector::{ConnectorError, ErrorKind, ErrorStatus, Operation};

/// The classification of one LDAP result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The connector error kind.
    pub kind: ErrorKind,
    /// Whether a retry may help.
    pub status: ErrorStatus,
    /// A readable explanation: the result code's name and, when AD's diagnostic holds a known
    /// code, what it means.
    pub explanation: String,
}

/// The name of an LDAP result code (RFC 4511).
pub fn result_code_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        18 => "inappropriateMatching",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        54 => "loopDetect",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        69 => "objectClassModsProhibited",
        71 => "affectsMultipleDSAs",
        80 => "other",
        88 => "abandoned",
        _ => "unknown",
    }
}

/// AD's `data XXX` sub-codes of a failed bind (49).
fn bind_data_meaning(diagnostic: &str) -> Option<&'static str> {
    let lower = diagnostic.to_ascii_lowercase();
    let data = lower.split("data ").nth(1)?;
    let code: String = data.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    Some(match code.as_str() {
        "525" => "user not found",
        "52e" => "invalid credentials",
        "530" => "not permitted to log on at this time",
        "531" => "not permitted to log on from this workstation",
        "532" => "password expired",
        "533" => "account disabled",
        "568" => "too many security IDs",
        "701" => "account expired",
        "773" => "user must reset password",
        "775" => "account locked out",
        _ => return None,
    })
}

/// AD's leading 8-digit WIN32/DS error code (`0000052D: ...`).
fn ad_code_meaning(diagnostic: &str) -> Option<(&'static str, Option<ErrorKind>)> {
    let code: String = diagnostic
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    if code.len() != 8 {
        return None;
    }
    Some(match code.to_ascii_uppercase().as_str() {
        "0000052D" => (
            "the password does not meet the password policy (length, complexity, history)",
            Some(ErrorKind::InvalidOrder),
        ),
        "00000056" => ("the old password is wrong", Some(ErrorKind::InvalidOrder)),
        "00002035" => (
            "the server is unwilling (e.g. removing a value that is not there)",
            None,
        ),
        "0000208F" | "00002083" => ("the attribute does not exist in the schema", None),
        "00002071" | "00000524" => (
            "another object already holds this name or unique value (e.g. sAMAccountName)",
            Some(ErrorKind::AlreadyExists),
        ),
        "00000005" | "00002098" => ("the service account lacks the right", None),
        "0000202B" => ("a referral: the object is in another naming context", None),
        "000004DC" => (
            "the operation needs a successful bind first",
            Some(ErrorKind::Unauthenticated),
        ),
        "00002024" => ("not allowed on a non-leaf entry", None),
        "00000057" => ("a parameter is incorrect", Some(ErrorKind::InvalidOrder)),
        "0000200B" | "0000207D" => ("the attribute value violates a schema rule", None),
        _ => return None,
    })
}

/// Classifies an LDAP result code with AD's diagnostic text.
pub fn classify(rc: u32, diagnostic: &str) -> Classification {
    use ErrorKind as K;
    use ErrorStatus::{Permanent as P, Temporary as T};
    let (kind, status) = match rc {
        3 => (K::Timeout, T),
        51 => (K::Unavailable, T),
        52 => (K::Unavailable, T),
        88 => (K::Unavailable, T),
        32 => (K::NotFound, P),
        68 => (K::AlreadyExists, P),
        19 | 17 | 21 | 34 | 64 | 65 | 67 | 69 | 18 => (K::InvalidOrder, P),
        53 => (K::InvalidOrder, P),
        10 => (K::InvalidOrder, P),
        16 | 20 | 66 => (K::Conflict, P),
        50 => (K::PermissionDenied, P),
        49 | 48 => (K::Unauthenticated, P),
        7 | 8 | 13 => (K::InvalidConfiguration, P),
        12 | 71 => (K::Unsupported, P),
        _ => (K::Unexpected, P),
    };
    let mut explanation = format!("LDAP {rc} ({})", result_code_name(rc));
    let mut kind = kind;
    if let Some((meaning, override_kind)) = ad_code_meaning(diagnostic) {
        explanation.push_str(": ");
        explanation.push_str(meaning);
        if let Some(k) = override_kind {
            kind = k;
        }
    }
    if rc == 49
        && let Some(meaning) = bind_data_meaning(diagnostic)
    {
        explanation.push_str(": ");
        explanation.push_str(meaning);
    }
    let status = if kind.default_status() == T {
        T
    } else {
        status
    };
    Classification {
        kind,
        status,
        explanation,
    }
}

/// A failed LDAP call: a result code from the server, or the transport failing.
#[derive(Clone, Debug)]
pub(crate) enum LdapFailure {
    /// The server answered with a non-success result.
    Result {
        rc: u32,
        text: String,
        matched: String,
    },
    /// The operation did not finish in time.
    Timeout(String),
    /// The connection failed (I/O, closed, TLS).
    Transport(String),
    /// The server's certificate was refused.
    Certificate(String),
}

impl LdapFailure {
    /// The result code, when the server answered.
    pub(crate) fn rc(&self) -> Option<u32> {
        match self {
            Self::Result { rc, .. } => Some(*rc),
            _ => None,
        }
    }

    pub(crate) fn text(&self) -> &str {
        match self {
            Self::Result { text, .. } => text,
            Self::Timeout(t) | Self::Transport(t) | Self::Certificate(t) => t,
        }
    }

    /// Whether the connection it happened on should be dropped.
    ///
    /// A timeout counts: an unanswered request on a multiplexed connection may mean a stalled or
    /// half-open TCP connection (a firewall dropped its state, a peer froze), which would stall
    /// every later request on it too. Replacing it costs one bind; trusting it can cost every
    /// order that lands on it. Requests still running on the old connection finish normally.
    pub(crate) fn breaks_connection(&self) -> bool {
        matches!(
            self,
            Self::Transport(_) | Self::Certificate(_) | Self::Timeout(_)
        )
    }

    /// The connector error for this failure during `operation` on `target`.
    pub(crate) fn into_error(self, operation: Operation, target: &str) -> ConnectorError {
        match self {
            Self::Result { rc, text, matched } => {
                let c = classify(rc, &text);
                let mut message = c.explanation;
                if !text.is_empty() {
                    message.push_str(&format!(
                        "; server said: {}",
                        text.trim_end_matches('\0').trim()
                    ));
                }
                if !matched.is_empty() {
                    message.push_str(&format!("; matched DN: {matched}"));
                }
                let e = ConnectorError::new(c.kind, operation, message).with_target(target);
                match c.status {
                    ErrorStatus::Temporary => e.temporary(),
                    _ => e.permanent(),
                }
            }
            Self::Timeout(t) => ConnectorError::new(ErrorKind::Timeout, operation, t)
                .with_target(target)
                .temporary(),
            Self::Transport(t) => ConnectorError::new(ErrorKind::Unavailable, operation, t)
                .with_target(target)
                .temporary(),
            Self::Certificate(t) => ConnectorError::new(
                ErrorKind::InvalidConfiguration,
                operation,
                format!("the server's TLS certificate was refused (check Tls.CaCertificate): {t}"),
            )
            .with_target(target)
            .permanent(),
        }
    }
}

impl From<ldap3::LdapError> for LdapFailure {
    fn from(e: ldap3::LdapError) -> Self {
        use ldap3::LdapError as E;
        match e {
            E::LdapResult { result } => Self::Result {
                rc: result.rc,
                text: result.text,
                matched: result.matched,
            },
            E::Timeout { .. } => Self::Timeout(format!("no answer in time: {e}")),
            E::Io { ref source } if is_certificate_error(&source.to_string()) => {
                Self::Certificate(e.to_string())
            }
            #[cfg(feature = "tls-rustls")]
            E::Rustls { .. } | E::DNSName { .. } => Self::Certificate(e.to_string()),
            #[cfg(feature = "tls-native")]
            E::NativeTLS { ref source } if is_certificate_error(&source.to_string()) => {
                Self::Certificate(e.to_string())
            }
            other => Self::Transport(other.to_string()),
        }
    }
}

fn is_certificate_error(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("certificate") || t.contains("unknownissuer") || t.contains("notvalidforname")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorKind as K;
    use ErrorStatus::{Permanent as P, Temporary as T};

    #[test]
    fn result_codes_and_diagnostics_table() {
        // (rc, diagnostic, kind, status, text the explanation must hold)
        let table: &[(u32, &str, ErrorKind, ErrorStatus, &str)] = &[
            (3, "", K::Timeout, T, "timeLimitExceeded"),
            (51, "", K::Unavailable, T, "busy"),
            (52, "", K::Unavailable, T, "unavailable"),
            (
                32,
                "0000208D: NameErr: DSID-0310020A, problem 2001 (NO_OBJECT)",
                K::NotFound,
                P,
                "noSuchObject",
            ),
            (68, "", K::AlreadyExists, P, "entryAlreadyExists"),
            (
                68,
                "Attribute member already exists for target GUID x",
                K::AlreadyExists,
                P,
                "entryAlreadyExists",
            ),
            (
                19,
                "0000052D: Constraint violation - check_password_restrictions: the password is too short",
                K::InvalidOrder,
                P,
                "password policy",
            ),
            (
                53,
                "0000052D: Constraint violation - password",
                K::InvalidOrder,
                P,
                "password policy",
            ),
            (
                53,
                "00002035: Unwilling to perform",
                K::InvalidOrder,
                P,
                "unwilling",
            ),
            (
                50,
                "00000005: SecErr: DSID-03152857, problem 4003 (INSUFF_ACCESS_RIGHTS)",
                K::PermissionDenied,
                P,
                "lacks the right",
            ),
            (
                49,
                "80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data 52e, v3839",
                K::Unauthenticated,
                P,
                "invalid credentials",
            ),
            (
                49,
                "80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data 533, v3839",
                K::Unauthenticated,
                P,
                "account disabled",
            ),
            (
                49,
                "... data 775, v3839",
                K::Unauthenticated,
                P,
                "locked out",
            ),
            (
                49,
                "... data 532, v3839",
                K::Unauthenticated,
                P,
                "password expired",
            ),
            (
                17,
                "0000208F: undefined attribute",
                K::InvalidOrder,
                P,
                "schema",
            ),
            (21, "", K::InvalidOrder, P, "invalidAttributeSyntax"),
            (
                34,
                "00002081: invalid dn",
                K::InvalidOrder,
                P,
                "invalidDNSyntax",
            ),
            (65, "", K::InvalidOrder, P, "objectClassViolation"),
            (67, "", K::InvalidOrder, P, "notAllowedOnRDN"),
            (
                66,
                "00002024: not allowed on non leaf",
                K::Conflict,
                P,
                "non-leaf",
            ),
            (20, "", K::Conflict, P, "attributeOrValueExists"),
            (16, "", K::Conflict, P, "noSuchAttribute"),
            (8, "", K::InvalidConfiguration, P, "strongerAuthRequired"),
            (
                13,
                "",
                K::InvalidConfiguration,
                P,
                "confidentialityRequired",
            ),
            (12, "", K::Unsupported, P, "unavailableCriticalExtension"),
            (71, "", K::Unsupported, P, "affectsMultipleDSAs"),
            (
                1,
                "000004DC: LdapErr: DSID-0C090A5C, comment: In order to perform this operation a successful bind must be completed",
                K::Unauthenticated,
                P,
                "bind",
            ),
            (1, "", K::Unexpected, P, "operationsError"),
            (80, "", K::Unexpected, P, "other"),
            (
                80,
                "00002071: duplicate",
                K::AlreadyExists,
                P,
                "sAMAccountName",
            ),
            (10, "0000202B: RefErr", K::InvalidOrder, P, "referral"),
            (88, "", K::Unavailable, T, "abandoned"),
        ];
        for (rc, diag, kind, status, needle) in table {
            let c = classify(*rc, diag);
            assert_eq!(
                (c.kind, c.status),
                (*kind, *status),
                "rc {rc} {diag:?}: {c:?}"
            );
            assert!(
                c.explanation.contains(needle),
                "rc {rc} {diag:?}: {:?} lacks {needle:?}",
                c.explanation
            );
        }
    }

    #[test]
    fn errors_keep_the_diagnostic_and_target() {
        let f = LdapFailure::Result {
            rc: 19,
            text: "0000052D: Constraint violation".into(),
            matched: String::new(),
        };
        let e = f.into_error(Operation::SetPassword, "CN=x,DC=example,DC=test");
        assert_eq!(e.kind(), K::InvalidOrder);
        assert!(!e.is_temporary());
        let text = e.to_string();
        assert!(
            text.contains("0000052D") && text.contains("CN=x") && text.contains("set password"),
            "{text}"
        );

        let e = LdapFailure::Transport("I/O error: broken pipe".into())
            .into_error(Operation::Update, "t");
        assert_eq!(e.kind(), K::Unavailable);
        assert!(e.is_temporary());
        let e = LdapFailure::Timeout("late".into()).into_error(Operation::Update, "t");
        assert_eq!(e.kind(), K::Timeout);
        assert!(e.is_temporary());
        let e = LdapFailure::Certificate("invalid peer certificate: UnknownIssuer".into())
            .into_error(Operation::Check, "t");
        assert_eq!(e.kind(), K::InvalidConfiguration);
        assert!(!e.is_temporary());
    }

    #[test]
    fn transport_errors_from_ldap3() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        );
        assert!(matches!(
            LdapFailure::from(ldap3::LdapError::from(io)),
            LdapFailure::Certificate(_)
        ));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let f = LdapFailure::from(ldap3::LdapError::from(io));
        assert!(matches!(f, LdapFailure::Transport(_)));
        assert!(f.breaks_connection());
        assert!(matches!(
            LdapFailure::from(ldap3::LdapError::EndOfStream),
            LdapFailure::Transport(_)
        ));
    }

    #[test]
    fn a_timeout_breaks_the_connection_and_a_result_code_does_not() {
        assert!(LdapFailure::Timeout("no answer".into()).breaks_connection());
        assert!(
            !LdapFailure::Result {
                rc: 51,
                text: "busy".into(),
                matched: String::new(),
            }
            .breaks_connection()
        );
    }
}
