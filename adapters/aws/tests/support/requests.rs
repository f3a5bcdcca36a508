//! Comparing nube-aws's payload 2.0 conversion with lambda_http's own, field by field.

use lambda_http::RequestExt;
use serde_json::Value;

type Converted = Result<http::Request<lambda_http::Body>, nube_aws::DecodeError>;

/// `text` (a payload 2.0 request) converted by `nube_aws::http::v2_into_http` and by
/// lambda_http (`decode_request`): the same request, or the same refusal.
pub fn assert_v2_conversions_agree(name: &str, text: &str) {
    let Some(request) = nube_aws::http::read_payload_v2(text) else {
        return;
    };
    let payload: Value = serde_json::from_str(text).unwrap();
    let origin = if payload["requestContext"]["domainName"]
        .as_str()
        .is_some_and(nube_aws::shape::is_function_url_domain)
    {
        nube_aws::http::HttpOrigin::FunctionUrl
    } else {
        nube_aws::http::HttpOrigin::HttpApi
    };
    let reference: Converted = nube_aws::http::decode_request(origin, payload);
    let fast: Converted = nube_aws::http::v2_into_http(request);
    match (fast, reference) {
        (Ok(fast), Ok(reference)) => {
            assert_eq!(fast.method(), reference.method(), "{name}: method");
            assert_eq!(
                fast.uri().to_string(),
                reference.uri().to_string(),
                "{name}: uri"
            );
            assert_eq!(fast.version(), reference.version(), "{name}: version");
            assert_eq!(fast.headers(), reference.headers(), "{name}: headers");
            assert_eq!(
                fast.body().as_ref(),
                reference.body().as_ref(),
                "{name}: body"
            );
            assert_eq!(fast.raw_http_path(), reference.raw_http_path(), "{name}");
            assert_eq!(
                fast.query_string_parameters(),
                reference.query_string_parameters(),
                "{name}: query"
            );
            assert_eq!(
                fast.path_parameters(),
                reference.path_parameters(),
                "{name}"
            );
            assert_eq!(
                fast.stage_variables(),
                reference.stage_variables(),
                "{name}"
            );
            // As JSON: its maps are hash maps, whose order differs run to run.
            let context = |r: &http::Request<lambda_http::Body>| {
                serde_json::to_value(r.request_context_ref()).unwrap()
            };
            assert_eq!(
                context(&fast),
                context(&reference),
                "{name}: request context"
            );
        }
        (Err(fast), Err(reference)) => {
            assert_eq!(fast.to_string(), reference.to_string(), "{name}")
        }
        (fast, reference) => panic!("{name}: {fast:?} by nube-aws, {reference:?} by lambda_http"),
    }
}
