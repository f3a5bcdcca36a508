//! The baseline for nube's Lambda runtime (`cargo xtask bench aws`): a bare
//! `lambda_runtime` function, as one writes it by hand, answering `GET /hello` from an
//! API Gateway HTTP API (payload 2.0) event with `200 hello` and anything else with
//! `404`. It sets up lambda_runtime's default tracing subscriber, as the usual
//! templates do. The nube app doing the same work is `nube-lambda-hello.rs`.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method};
use lambda_runtime::{Error, LambdaEvent, service_fn};

/// The function (also what `cargo bench -p nube-aws --bench invocation` runs in
/// process).
pub async fn handler(
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, Error> {
    let request = event.payload;
    let found = request.request_context.http.method == Method::GET
        && request.raw_path.as_deref() == Some("/hello");
    let (status, body) = if found {
        (200, "hello")
    } else {
        (404, "not found")
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = status;
    response.headers = headers;
    response.body = Some(Body::Text(body.to_owned()));
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(handler)).await
}
