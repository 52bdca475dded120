//! The only place where [`Error`]s and gRPC [`Status`]es meet.
//!
//! Failures the owner reports on purpose (its loader failed, panicked, found nothing, or
//! produced a value too large) travel as a status carrying the metadata entry
//! `groupcache-error: <kind>`. The asking peer returns those as they are, with no local retry
//! (semantics rule 5). So are statuses that mean misconfiguration rather than an outage:
//! `Unauthenticated`/`PermissionDenied`, `InvalidArgument`, `OutOfRange` (a reply over this
//! peer's message limit) and `Unimplemented` (no groupcache service at that address). Any other
//! status came from the transport, a proxy or a struggling peer, and means "owner unreachable":
//! load locally.

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::{Error, ErrorKind, GroupcachePeer};

/// Metadata key marking a status the owner produced deliberately.
const ERROR_KIND_KEY: &str = "groupcache-error";

/// What a failed peer call means for the asking peer.
#[derive(Debug, Clone)]
pub(crate) enum PeerFailure {
    /// The owner answered; its answer is the result. No fallback.
    Answer(Error),
    /// The owner could not be reached or answered with something unusable: load locally.
    Transport(Error),
}

impl ErrorKind {
    fn wire_name(self) -> Option<&'static str> {
        Some(match self {
            ErrorKind::Loader => "loader",
            ErrorKind::LoaderPanicked => "loader-panicked",
            ErrorKind::NotFound => "not-found",
            ErrorKind::ValueTooLarge => "value-too-large",
            ErrorKind::Codec => "codec",
            ErrorKind::KeyTooLong => "key-too-long",
            ErrorKind::UnknownGroup => "unknown-group",
            _ => return None,
        })
    }

    fn from_wire_name(name: &str) -> Option<Self> {
        Some(match name {
            "loader" => ErrorKind::Loader,
            "loader-panicked" => ErrorKind::LoaderPanicked,
            "not-found" => ErrorKind::NotFound,
            "value-too-large" => ErrorKind::ValueTooLarge,
            "codec" => ErrorKind::Codec,
            "key-too-long" => ErrorKind::KeyTooLong,
            "unknown-group" => ErrorKind::UnknownGroup,
            _ => return None,
        })
    }
}

/// Longest error detail sent to a peer. A status travels in HTTP/2 headers, and the asking
/// peer's client refuses header lists over 16 KiB (non-ASCII text is percent-encoded to three
/// times its size): an uncut message would turn the owner's answer into a protocol error, which
/// reads as "owner unreachable" and causes a second, local load.
const MAX_DETAIL: usize = 1024;

/// The status the owner answers with when serving `err` to a peer.
pub(crate) fn to_status(err: &Error) -> Status {
    let code = match err.kind() {
        ErrorKind::NotFound | ErrorKind::UnknownGroup => Code::NotFound,
        ErrorKind::KeyTooLong => Code::InvalidArgument,
        ErrorKind::ValueTooLarge => Code::OutOfRange,
        ErrorKind::LoaderPanicked | ErrorKind::Codec => Code::Internal,
        // The load was cut short here (e.g. shutting down): the asker should load it itself.
        ErrorKind::Abandoned => Code::Unavailable,
        // `Loader` is marked below, so the asker returns it. No handler serves the others to a
        // peer (they arise on the asking side, or at build time). Listed one by one, with no
        // wildcard, so that a new kind needs a decision here: an unmarked status reads as an
        // outage on the asker, which then loads locally.
        ErrorKind::Loader
        | ErrorKind::Peer
        | ErrorKind::Unauthenticated
        | ErrorKind::InvalidRequest
        | ErrorKind::Config
        | ErrorKind::GroupExists
        | ErrorKind::WrongService
        | ErrorKind::NotAMember
        | ErrorKind::Connect => Code::Unknown,
    };
    let mut status = Status::new(code, truncate(err.detail(), MAX_DETAIL));
    if let Some(name) = err.kind().wire_name() {
        status
            .metadata_mut()
            .insert(ERROR_KIND_KEY, MetadataValue::from_static(name));
    }
    status
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... ({} bytes in all)", &text[..cut], text.len())
}

/// Marks of statuses that tonic produced for this peer's service before the handler ran: the
/// request was refused as it arrived. Never sent for a handler's own errors.
const REQUEST_TOO_LARGE: &str = "request-too-large";
const MALFORMED_REQUEST: &str = "malformed-request";
/// The mark of a `held_only` request's "I do not hold it".
const NOT_HELD: &str = "not-held";

/// The answer to a `held_only` request for a value this peer does not hold.
pub(crate) fn not_held() -> Status {
    let mut status = Status::not_found("this peer does not hold the value");
    status
        .metadata_mut()
        .insert(ERROR_KIND_KEY, MetadataValue::from_static(NOT_HELD));
    status
}

/// The status for a request that decoded but makes no sense (a field that must be a peer
/// address is not one): `InvalidArgument`, marked as a malformed request, so the asker reports
/// it as a refusal instead of an outage.
pub(crate) fn malformed_request(detail: &str) -> Status {
    let mut status = Status::invalid_argument(truncate(detail, MAX_DETAIL));
    status.metadata_mut().insert(
        ERROR_KIND_KEY,
        MetadataValue::from_static(MALFORMED_REQUEST),
    );
    status
}

/// Gives a request that tonic refused before the handler ran (its message over this peer's
/// request limit: `OutOfRange`; a message that does not decode, such as a key that is not
/// UTF-8: `Internal`) the status it deserves, `InvalidArgument`, marked with why. The handler's
/// own errors are always marked, so an unmarked status can only be tonic's. The asking peer
/// then reports the cause instead of blaming its own reply limit or the owner.
pub(crate) fn mark_refused_request<B>(response: &mut http::Response<B>) {
    let headers = response.headers_mut();
    if headers.contains_key(ERROR_KIND_KEY) {
        return;
    }
    let mark = match headers.get("grpc-status").map(http::HeaderValue::as_bytes) {
        Some(b"11") => REQUEST_TOO_LARGE,
        Some(b"13") => MALFORMED_REQUEST,
        _ => return,
    };
    headers.insert(
        "grpc-status",
        http::HeaderValue::from(Code::InvalidArgument as i32),
    );
    headers.insert(ERROR_KIND_KEY, http::HeaderValue::from_static(mark));
}

/// Classifies the status a peer answered `key` of `group` with.
pub(crate) fn from_status(
    status: &Status,
    group: &str,
    key: &str,
    peer: &GroupcachePeer,
) -> PeerFailure {
    let marked = status
        .metadata()
        .get(ERROR_KIND_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(ErrorKind::from_wire_name);
    // `Describe` names no group.
    let about = |err: Error| {
        let err = if group.is_empty() {
            err
        } else {
            err.with_group(group)
        };
        err.with_key(key).with_peer(peer)
    };
    let answer =
        |kind: ErrorKind, detail: String| PeerFailure::Answer(about(Error::new(kind, detail)));
    match marked {
        // This peer let the key through, so the owner's limit is lower than ours.
        Some(ErrorKind::KeyTooLong) => {
            return answer(
                ErrorKind::InvalidRequest,
                format!(
                    "the owner refused the key: {}; this peer allows longer keys, so give \
                     every peer the same max_key_len",
                    status.message()
                ),
            );
        }
        Some(kind) => return answer(kind, status.message().to_owned()),
        None => {}
    }
    match status
        .metadata()
        .get(ERROR_KIND_KEY)
        .map(tonic::metadata::MetadataValue::as_bytes)
    {
        Some(mark) if mark == REQUEST_TOO_LARGE.as_bytes() => {
            return answer(
                ErrorKind::InvalidRequest,
                format!(
                    "the owner refused the request as larger than its limit ({}); it allows \
                     shorter keys than this peer, so give every peer the same max_key_len",
                    status.message()
                ),
            );
        }
        Some(mark) if mark == NOT_HELD.as_bytes() => {
            return answer(ErrorKind::NotFound, status.message().to_owned());
        }
        Some(mark) if mark == MALFORMED_REQUEST.as_bytes() => {
            return answer(
                ErrorKind::InvalidRequest,
                format!(
                    "the owner could not decode the request: {}",
                    status.message()
                ),
            );
        }
        _ => {}
    }
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => answer(
            ErrorKind::Unauthenticated,
            format!(
                "{:?}: {}; check that every peer is configured with the same credentials",
                status.code(),
                status.message()
            ),
        ),
        Code::InvalidArgument => answer(ErrorKind::InvalidRequest, status.message().to_owned()),
        // Our server marks its own size errors, so this is the asking client's decode limit:
        // loading locally would produce the same oversized value.
        Code::OutOfRange => answer(
            ErrorKind::ValueTooLarge,
            format!(
                "the owner's reply exceeds this peer's message limit ({}); \
                 give every peer the same max_value_size",
                status.message()
            ),
        ),
        // Something that does not serve this protocol listens at the peer's address: a
        // configuration error, not an outage. Loading locally would hide it.
        Code::Unimplemented => answer(
            ErrorKind::WrongService,
            format!(
                "the peer does not serve groupcache.v2 ({}); check the peer list, and that \
                 every peer runs a version of this library that speaks protocol version 2",
                status.message()
            ),
        ),
        code => PeerFailure::Transport(
            about(Error::new(
                ErrorKind::Peer,
                format!("{code:?}: {}", status.message()),
            ))
            .with_source(Box::new(status.clone())),
        ),
    }
}

/// One key's failure in a `GetMany` answer, as its `KeyResult` fields: the status code,
/// message and `groupcache-error` mark a `Get` of the key would have been answered with.
pub(crate) fn to_key_status(err: &Error) -> (u32, String, String) {
    let status = to_status(err);
    let mark = status
        .metadata()
        .get(ERROR_KIND_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let code = u32::try_from(i32::from(status.code())).unwrap_or(2);
    (code, status.message().to_owned(), mark)
}

/// Classifies one key's failure in a `GetMany` answer exactly as [`from_status`] classifies
/// the status of a `Get`.
pub(crate) fn from_key_status(
    (code, message, mark): (u32, &str, &str),
    group: &str,
    key: &str,
    peer: &GroupcachePeer,
) -> PeerFailure {
    let code = Code::from(i32::try_from(code).unwrap_or(2));
    let mut status = Status::new(code, message);
    if !mark.is_empty()
        && let Ok(mark) = MetadataValue::try_from(mark)
    {
        status.metadata_mut().insert(ERROR_KIND_KEY, mark);
    }
    from_status(&status, group, key, peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> GroupcachePeer {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn a_key_status_in_a_batch_classifies_as_a_get_status_would() {
        for kind in [
            ErrorKind::Loader,
            ErrorKind::NotFound,
            ErrorKind::KeyTooLong,
            ErrorKind::Abandoned,
        ] {
            let err = Error::new(kind, "why");
            let (code, message, mark) = to_key_status(&err);
            let batched = from_key_status((code, &message, &mark), "g", "k", &peer());
            let single = from_status(&to_status(&err), "g", "k", &peer());
            match (batched, single) {
                (PeerFailure::Answer(a), PeerFailure::Answer(b))
                | (PeerFailure::Transport(a), PeerFailure::Transport(b)) => {
                    assert_eq!(a.kind(), b.kind(), "{kind:?}");
                    assert_eq!(a.detail(), b.detail(), "{kind:?}");
                }
                (a, b) => panic!("{kind:?}: batched {a:?}, single {b:?}"),
            }
        }
    }

    #[test]
    fn deliberate_errors_round_trip_as_answers() {
        for kind in [
            ErrorKind::Loader,
            ErrorKind::LoaderPanicked,
            ErrorKind::NotFound,
            ErrorKind::ValueTooLarge,
            ErrorKind::Codec,
            ErrorKind::UnknownGroup,
        ] {
            let status = to_status(&Error::new(kind, "why"));
            match from_status(&status, "g", "k", &peer()) {
                PeerFailure::Answer(err) => {
                    assert_eq!(err.kind(), kind);
                    assert_eq!(err.detail(), "why");
                    assert_eq!(err.peer(), Some(&peer()));
                }
                other @ PeerFailure::Transport(_) => panic!("{kind:?} became {other:?}"),
            }
        }
    }

    // Regression test for issue 10, item 9: a key this peer let through but the owner refused
    // is a mismatch of limits between peers, not this caller's over-long key.
    #[test]
    fn an_owner_refusing_a_key_this_peer_allowed_names_the_mismatch() {
        let status = to_status(&Error::new(ErrorKind::KeyTooLong, "1500 > 1024"));
        let PeerFailure::Answer(err) = from_status(&status, "g", "k", &peer()) else {
            panic!("not an answer");
        };
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
        assert!(err.detail().contains("same max_key_len"), "{err}");
    }

    /// A trailers-only response as tonic's server sends one for `status`.
    fn refusal(status: Status) -> http::Response<()> {
        let (parts, _) = status.into_http::<tonic::body::Body>().into_parts();
        http::Response::from_parts(parts, ())
    }

    // Regression test for issue 10, item 9: tonic's own refusals of a request (too large, not
    // decodable) were `OutOfRange`, read by the asker as its reply limit, and `Internal`.
    #[test]
    fn requests_tonic_refused_become_marked_invalid_arguments() {
        for (code, expected) in [
            (Code::OutOfRange, "larger than its limit"),
            (Code::Internal, "could not decode the request"),
        ] {
            let mut response = refusal(Status::new(code, "tonic's words"));
            mark_refused_request(&mut response);
            let status = Status::from_header_map(response.headers()).expect("a status");
            assert_eq!(status.code(), Code::InvalidArgument, "{code:?}");
            let PeerFailure::Answer(err) = from_status(&status, "g", "k", &peer()) else {
                panic!("{code:?}: not an answer");
            };
            assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{code:?}");
            assert!(err.detail().contains(expected), "{code:?}: {err}");
            assert!(err.detail().contains("tonic's words"), "{code:?}: {err}");
        }
    }

    // What makes the marking above sound: the handler never sends an unmarked `Internal` or
    // `OutOfRange`, so an unmarked one can only be tonic refusing the request.
    #[test]
    fn every_internal_or_out_of_range_the_handler_sends_is_marked() {
        for kind in [
            ErrorKind::Loader,
            ErrorKind::LoaderPanicked,
            ErrorKind::NotFound,
            ErrorKind::KeyTooLong,
            ErrorKind::ValueTooLarge,
            ErrorKind::Codec,
            ErrorKind::Peer,
            ErrorKind::Unauthenticated,
            ErrorKind::InvalidRequest,
            ErrorKind::Abandoned,
            ErrorKind::Config,
            ErrorKind::GroupExists,
            ErrorKind::UnknownGroup,
            ErrorKind::WrongService,
            ErrorKind::NotAMember,
            ErrorKind::Connect,
        ] {
            let status = to_status(&Error::new(kind, "why"));
            if matches!(status.code(), Code::Internal | Code::OutOfRange) {
                assert!(
                    status.metadata().get(ERROR_KIND_KEY).is_some(),
                    "{kind:?} is sent as an unmarked {:?}",
                    status.code()
                );
            }
        }
    }

    #[test]
    fn the_handlers_own_errors_and_successes_are_left_alone() {
        let mut marked = refusal(to_status(&Error::new(ErrorKind::LoaderPanicked, "boom")));
        let before = marked.headers().clone();
        mark_refused_request(&mut marked);
        assert_eq!(marked.headers(), &before);
        let mut other = refusal(Status::unavailable("shutting down"));
        let before = other.headers().clone();
        mark_refused_request(&mut other);
        assert_eq!(other.headers(), &before);
    }

    #[test]
    fn unmarked_statuses_are_transport_failures() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Cancelled,
            Code::Unknown,
            Code::Internal,
            Code::NotFound,
            Code::ResourceExhausted,
        ] {
            let status = Status::new(code, "x");
            assert!(
                matches!(
                    from_status(&status, "g", "k", &peer()),
                    PeerFailure::Transport(_)
                ),
                "{code:?}"
            );
        }
    }

    #[test]
    fn misconfiguration_is_an_answer_not_a_fallback() {
        for (code, kind) in [
            (Code::OutOfRange, ErrorKind::ValueTooLarge),
            (Code::Unimplemented, ErrorKind::WrongService),
            (Code::InvalidArgument, ErrorKind::InvalidRequest),
        ] {
            match from_status(&Status::new(code, "x"), "g", "k", &peer()) {
                PeerFailure::Answer(err) => assert_eq!(err.kind(), kind),
                other @ PeerFailure::Transport(_) => panic!("{code:?} became {other:?}"),
            }
        }
    }

    #[test]
    fn long_details_are_cut_so_the_status_fits_in_headers() {
        let detail = "ü".repeat(10_000);
        let status = to_status(&Error::new(ErrorKind::Loader, detail));
        assert!(status.message().len() < MAX_DETAIL + 64);
        assert!(status.message().ends_with("(20000 bytes in all)"));
    }

    #[test]
    fn auth_failures_are_answers_never_fallbacks() {
        let status = Status::unauthenticated("bad token");
        match from_status(&status, "g", "k", &peer()) {
            PeerFailure::Answer(err) => assert_eq!(err.kind(), ErrorKind::Unauthenticated),
            other @ PeerFailure::Transport(_) => panic!("{other:?}"),
        }
    }

    #[test]
    fn abandoned_loads_tell_the_asker_to_fall_back() {
        let status = to_status(&Error::new(ErrorKind::Abandoned, "shutting down"));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(matches!(
            from_status(&status, "g", "k", &peer()),
            PeerFailure::Transport(_)
        ));
    }
}
