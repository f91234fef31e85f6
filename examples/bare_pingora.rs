//! The floor for keyway's load benchmark: the smallest Pingora reverse proxy there is (one
//! upstream, no routing, no auth, no headers, no metrics, no log), built with the same Pingora,
//! allocator and profile as keyway, so `bench/load.py` can show how much of keyway's cost per
//! request is Pingora's own.
//!
//!     cargo run --release --example bare_pingora -- LISTEN_PORT UPSTREAM_PORT

use async_trait::async_trait;
use pingora::prelude::*;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct PassThrough {
    upstream: Arc<HttpPeer>,
}

#[async_trait]
impl ProxyHttp for PassThrough {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.upstream.as_ref().clone()))
    }
}

fn main() {
    let ports: Vec<u16> = std::env::args()
        .skip(1)
        .map(|arg| {
            arg.parse()
                .expect("usage: bare_pingora LISTEN_PORT UPSTREAM_PORT")
        })
        .collect();
    let [listen, upstream] = ports[..] else {
        panic!("usage: bare_pingora LISTEN_PORT UPSTREAM_PORT");
    };
    let mut server = Server::new(None).expect("pingora server");
    server.bootstrap();
    let upstream = Arc::new(HttpPeer::new(("127.0.0.1", upstream), false, String::new()));
    let mut service = http_proxy_service(&server.configuration, PassThrough { upstream });
    service.add_tcp(&format!("127.0.0.1:{listen}"));
    service.threads = Some(1);
    server.add_service(service);
    server.run_forever();
}
