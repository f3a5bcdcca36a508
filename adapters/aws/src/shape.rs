//! What a Lambda payload is, told by its shape (AWS sends no type tag): used to route
//! a payload to its decoder and to say clearly what arrived when it is not what the
//! function takes.

use serde_json::Value;

/// The kinds of payload Lambda hands a function, as far as nube cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventShape {
    /// API Gateway REST API proxy request (payload format 1.0; HTTP APIs can send it too).
    ApiGatewayRest,
    /// API Gateway HTTP API request, payload format 2.0.
    ApiGatewayHttp,
    /// Lambda Function URL request (the 2.0 format on a `*.lambda-url.*` domain).
    FunctionUrl,
    /// Application Load Balancer target group request.
    Alb,
    /// S3 event notification (`Records[].eventSource == "aws:s3"`).
    S3,
    /// The `s3:TestEvent` S3 sends when a notification is configured.
    S3TestEvent,
    /// DynamoDB Streams batch (`Records[].eventSource == "aws:dynamodb"`).
    DynamoDbStream,
    /// One DynamoDB Streams record on its own (not a Lambda payload: Lambda wraps
    /// records in `Records`).
    DynamoDbRecord,
    /// EventBridge (CloudWatch Events) scheduled event (`detail-type: Scheduled Event`).
    ScheduledEvent,
    /// Any other EventBridge event.
    EventBridge,
    /// SQS message batch.
    Sqs,
    /// SNS notification.
    Sns,
    /// Kinesis Data Streams batch.
    Kinesis,
    /// `Records` from some other service.
    OtherRecords,
    /// A function's HTTP response (`statusCode`), not a request.
    HttpResponse,
    /// A partial-batch response (`batchItemFailures`), not an event.
    BatchResponse,
    /// Not valid JSON, or nothing recognisable.
    Unknown,
}

impl EventShape {
    /// Whether nube serves this payload as an HTTP request.
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Self::ApiGatewayRest | Self::ApiGatewayHttp | Self::FunctionUrl | Self::Alb
        )
    }

    /// A short description, for error messages ("an SQS message batch").
    pub fn describe(self) -> &'static str {
        match self {
            Self::ApiGatewayRest => "an API Gateway REST (payload 1.0) request",
            Self::ApiGatewayHttp => "an API Gateway HTTP API (payload 2.0) request",
            Self::FunctionUrl => "a Lambda Function URL request",
            Self::Alb => "an Application Load Balancer request",
            Self::S3 => "an S3 event notification",
            Self::S3TestEvent => "an S3 test event (s3:TestEvent)",
            Self::DynamoDbStream => "a DynamoDB Streams batch",
            Self::DynamoDbRecord => {
                "a single DynamoDB Streams record (Lambda sends records inside \"Records\")"
            }
            Self::ScheduledEvent => "an EventBridge scheduled event",
            Self::EventBridge => "an EventBridge event that is not a scheduled event",
            Self::Sqs => "an SQS message batch",
            Self::Sns => "an SNS notification",
            Self::Kinesis => "a Kinesis Data Streams batch",
            Self::OtherRecords => "a batch of records from a service nube does not support",
            Self::HttpResponse => "an HTTP response (it has statusCode), not a request",
            Self::BatchResponse => "a partial batch response (batchItemFailures), not an event",
            Self::Unknown => "a payload that is not an event nube knows",
        }
    }
}

impl std::fmt::Display for EventShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, key| v.get(key))
        .and_then(Value::as_str)
}

/// Classifies a Lambda payload by its shape (PROTOCOL-NOTES, AWS rule 1).
pub fn classify(payload: &Value) -> EventShape {
    let Some(obj) = payload.as_object() else {
        return EventShape::Unknown;
    };
    if let Some(records) = obj.get("Records").and_then(Value::as_array) {
        let source = records.first().and_then(|r| {
            r.get("eventSource")
                .or_else(|| r.get("EventSource"))
                .and_then(Value::as_str)
        });
        return match source {
            Some("aws:s3") => EventShape::S3,
            Some("aws:dynamodb") => EventShape::DynamoDbStream,
            Some("aws:sqs") => EventShape::Sqs,
            Some("aws:sns") => EventShape::Sns,
            Some("aws:kinesis") => EventShape::Kinesis,
            // An empty batch, or records without a source: judge by the first record.
            _ => match records.first() {
                Some(r) if r.get("s3").is_some() => EventShape::S3,
                Some(r) if r.get("dynamodb").is_some() => EventShape::DynamoDbStream,
                _ => EventShape::OtherRecords,
            },
        };
    }
    if let Some(ctx) = obj.get("requestContext") {
        if ctx.get("elb").is_some() {
            return EventShape::Alb;
        }
        let v2 = obj.get("rawPath").is_some()
            || ctx.get("http").and_then(|h| h.get("method")).is_some()
            || str_at(payload, &["version"]) == Some("2.0");
        if v2 {
            let url = str_at(ctx, &["domainName"]).is_some_and(is_function_url_domain);
            return if url {
                EventShape::FunctionUrl
            } else {
                EventShape::ApiGatewayHttp
            };
        }
        if obj.get("httpMethod").is_some() {
            return EventShape::ApiGatewayRest;
        }
    }
    if obj.get("statusCode").is_some() {
        return EventShape::HttpResponse;
    }
    if obj.get("batchItemFailures").is_some() {
        return EventShape::BatchResponse;
    }
    if str_at(payload, &["Event"]) == Some("s3:TestEvent") {
        return EventShape::S3TestEvent;
    }
    if obj.get("eventSource").and_then(Value::as_str) == Some("aws:dynamodb")
        && obj.get("dynamodb").is_some()
    {
        return EventShape::DynamoDbRecord;
    }
    let detail_type = obj
        .get("detail-type")
        .or_else(|| obj.get("detailType"))
        .and_then(Value::as_str);
    if let Some(detail_type) = detail_type
        && obj.get("source").is_some()
    {
        return if detail_type == "Scheduled Event" {
            EventShape::ScheduledEvent
        } else {
            EventShape::EventBridge
        };
    }
    EventShape::Unknown
}

/// Whether a 2.0 request's `domainName` is a Lambda Function URL's
/// (`<id>.lambda-url.<region>.on.aws`) rather than an API Gateway HTTP API's.
pub fn is_function_url_domain(domain: &str) -> bool {
    domain.contains(".lambda-url.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes() {
        let cases = [
            (
                json!({"requestContext": {"elb": {}}, "httpMethod": "GET"}),
                EventShape::Alb,
            ),
            (
                json!({"version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "GET"}, "domainName": "x.lambda-url.eu-west-1.on.aws"}}),
                EventShape::FunctionUrl,
            ),
            (
                json!({"rawPath": "/", "requestContext": {"http": {"method": "GET"}}}),
                EventShape::ApiGatewayHttp,
            ),
            (
                json!({"httpMethod": "GET", "path": "/", "requestContext": {}}),
                EventShape::ApiGatewayRest,
            ),
            (
                json!({"Records": [{"eventSource": "aws:sqs"}]}),
                EventShape::Sqs,
            ),
            (
                json!({"Records": [{"EventSource": "aws:sns"}]}),
                EventShape::Sns,
            ),
            (
                json!({"detail-type": "Scheduled Event", "source": "aws.events"}),
                EventShape::ScheduledEvent,
            ),
            (
                json!({"detailType": "Scheduled Event", "source": "aws.events"}),
                EventShape::ScheduledEvent,
            ),
            (
                json!({"detail-type": "x", "source": "aws.ec2"}),
                EventShape::EventBridge,
            ),
            (json!({"statusCode": 200}), EventShape::HttpResponse),
            (json!({"batchItemFailures": []}), EventShape::BatchResponse),
            (json!([1, 2]), EventShape::Unknown),
        ];
        for (payload, shape) in cases {
            assert_eq!(classify(&payload), shape, "{payload}");
        }
    }
}
