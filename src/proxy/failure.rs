//! Errors that interrupt proxying: keyway's own mid-flight decisions and Pingora's failures,
//! answered as envelopes by `fail_to_proxy`.

use super::ctx::RequestCtx;
use super::respond;
use crate::error::GatewayError;
use pingora::proxy::{FailToProxy, Session};
use pingora::{Error, ErrorType};
use tracing::debug;

/// Records a keyway decision that must abort proxying, and the Pingora error that carries it.
pub(super) fn expected(ctx: &mut RequestCtx, error: GatewayError) -> Box<Error> {
    let status = error.status().as_u16();
    ctx.failure = Some(error);
    ctx.expected_failure = true;
    Error::new(ErrorType::HTTPStatus(status))
}

/// Answers a failed request with its envelope, unless a response is already under way.
pub(super) async fn answer(
    session: &mut Session,
    error: &Error,
    ctx: &mut RequestCtx,
) -> FailToProxy {
    let decided = ctx
        .failure
        .take()
        .or_else(|| GatewayError::from_pingora(error));
    let written = session
        .response_written()
        .map(|header| header.status.as_u16());
    let error_code = match (decided, written) {
        (_, Some(status)) => status,
        (None, None) => 0,
        (Some(decided), None) => {
            let status = decided.status().as_u16();
            // Pingora will not reuse this connection: say so, so the client does not try.
            session.set_keepalive(None);
            if let Err(write_error) = respond::send_error(session, ctx, decided).await {
                debug!(request_id = ctx.request_id(), %write_error, "could not send the error response");
            }
            status
        }
    };
    FailToProxy {
        error_code,
        can_reuse_downstream: false,
    }
}
