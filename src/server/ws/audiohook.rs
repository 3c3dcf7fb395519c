//! Genesys Cloud AudioHook v2 (`/audiohook`): not implemented yet. The `X-API-KEY`
//! check before the upgrade is; an accepted session is closed at once.
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::Request;
use tokio_tungstenite::WebSocketStream;

use super::WsError;
use crate::server::legs::Calls;

/// Whether the request's `X-API-KEY` header is one of `keys`.
pub fn key_ok(req: &Request, keys: &[String]) -> bool {
    req.headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|k| keys.iter().any(|ok| ok == k))
}

pub(super) async fn run(
    mut ws: WebSocketStream<TcpStream>,
    _calls: &Arc<Calls>,
) -> Result<(), WsError> {
    let _ = ws.close(None).await;
    Ok(())
}
