//! A small backend for the tests of `--backend-protocol h2c`: it answers HTTP/1.1 (the
//! health probes) and h2c with prior knowledge on `PORT`, every request with its name,
//! the protocol it was asked in (`x-protocol`), and a gRPC-style trailer
//! (`grpc-status: 0`), as a gRPC service would.
//!
//!   PORT=8080 cargo run -p hivemind --example h2c_backend -- NAME

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "h2c".to_string());
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8080);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let name = name.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let body = format!("{name}\n");
                let protocol = format!("{:?}", req.version());
                async move {
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    let frames: Vec<Result<Frame<Bytes>, Infallible>> =
                        vec![Ok(Frame::data(Bytes::from(body))), Ok(Frame::trailers(trailers))];
                    let response = hyper::Response::builder()
                        .header("x-protocol", protocol)
                        .header("trailer", "grpc-status")
                        .body(StreamBody::new(futures::stream::iter(frames)))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
