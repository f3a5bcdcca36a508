//! The delivery app on AWS Lambda, end to end, on parts nobody here wrote: the real
//! `bootstrap` (this package's binary, built with the `aws` feature) runs as one process
//! per nube function, each with its own `_HANDLER`, as Lambda would run it, and takes
//! its invocations from cargo-lambda's Runtime API emulator (`cargo lambda watch
//! --only-lambda-apis`), while its tables, bucket, stream and queue are moto's.
//!
//! The test plays the AWS services that sit between them: it builds the API Gateway
//! (HTTP API) events, passes the S3 notification that moto delivers to an SQS queue to
//! `make-thumbnails` as it is, and wraps what the table's DynamoDB stream returns into
//! the batch Lambda's event source mapping would send to `orders-read-model`.
//!
//! **The packaged bootstrap instead.** With `NUBE_AWS_BOOTSTRAP` naming the `bootstrap`
//! from `cargo xtask package --target aws` (unzipped), the tests run that instead of
//! this package's debug build:
//!
//! ```text
//! cargo xtask package --target aws --app delivery-app
//! unzip -o target/nube/aws/delivery-app/bootstrap.zip -d target/nube/aws/delivery-app/unzipped
//! NUBE_AWS_BOOTSTRAP=target/nube/aws/delivery-app/unzipped/bootstrap cargo test -p delivery-app --features aws --test aws_e2e
//! ```
//!
//! Needs `NUBE_MOTO_SERVER` and `NUBE_CARGO_LAMBDA`: `cargo xtask test` installs both
//! into `.tools/venv` and sets them; by hand, `export $(cargo xtask tools)`. Without
//! them the test fails, saying so; it never skips.
//!
//! How the emulator maps functions to processes: see [`lambda_emulator`].

#[path = "../../../adapters/aws/tests/lambda_emulator/mod.rs"]
mod lambda_emulator;
#[path = "../../../adapters/aws/tests/moto/mod.rs"]
mod moto;

use std::collections::HashMap;
use std::io::Cursor;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::types::{AttributeValue as A, Record, ShardIteratorType};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use nube_aws::dynamodb::sdk as dynamodb;
use nube_aws::dynamodb::{DynamoDbStore, TableNaming};
use nube_aws::names::{bucket_env_var, table_env_var};
use reqwest::StatusCode;
use serde_json::{Value, json};

use lambda_emulator::{Emulator, log_file, read_log};
use moto::{ACCESS_KEY, Moto, REGION, SECRET_KEY};

/// Physical names: `delivery-app-e2e-<logical>` for tables and the bucket.
const PREFIX: &str = "delivery-app-e2e-";
/// The queue S3 notifies of uploads under `original/`.
const QUEUE: &str = "delivery-app-e2e-uploads-created";
/// How long any one wait (an invocation, a message, a stream record) may take.
const PATIENCE: Duration = Duration::from_secs(60);

/// The bootstrap executable: `NUBE_AWS_BOOTSTRAP` (relative to the workspace, or
/// absolute), else this package's binary.
fn bootstrap() -> std::path::PathBuf {
    match std::env::var_os("NUBE_AWS_BOOTSTRAP") {
        Some(path) => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path),
        None => env!("CARGO_BIN_EXE_delivery-app").into(),
    }
}

/// The bootstrap of `function` as Lambda starts it, polling `runtime_api`, its output
/// into `log` (the memory size and the rest are the caller's).
fn bootstrap_command(runtime_api: &str, function: &str, log: &tempfile::NamedTempFile) -> Command {
    let mut command = Command::new(bootstrap());
    command
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("_HANDLER", function)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap());
    command
}

/// One `bootstrap` process: one nube function behind one Lambda function.
struct Bootstrap {
    function: String,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Drop for Bootstrap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything the test runs: moto, the emulator and the bootstraps (stopped in the
/// reverse order). When the test fails, dropping it prints every process's log.
struct Stack {
    bootstraps: Vec<Bootstrap>,
    emulator: Emulator,
    moto: Moto,
    http: reqwest::Client,
}

impl Drop for Stack {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        eprintln!("---- cargo-lambda's log ----\n{}", self.emulator.log_text());
        for b in &mut self.bootstraps {
            let state = match b.child.try_wait() {
                Ok(Some(status)) => format!("exited: {status}"),
                _ => "running".to_owned(),
            };
            eprintln!(
                "---- bootstrap {} ({state}) ----\n{}",
                b.function,
                read_log(&b.log)
            );
        }
    }
}

/// The answer to one invocation: the Invoke API's status and the payload.
#[derive(Debug)]
struct Invocation {
    status: StatusCode,
    payload: Value,
}

impl Stack {
    fn start_bootstraps(&mut self, env: &[(String, String)]) {
        let functions: Vec<String> = delivery_app::app()
            .functions()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        for function in functions {
            let log = log_file();
            let child = bootstrap_command(&self.emulator.runtime_api(&function), &function, &log)
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
                .env("AWS_ENDPOINT_URL", self.moto.endpoint())
                .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
                .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
                .env_remove("AWS_SESSION_TOKEN")
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_ENDPOINT_URL_S3")
                .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
                .env("AWS_DEFAULT_REGION", REGION)
                .env("RUST_LOG", "info")
                .envs(env.iter().map(|(k, v)| (k, v)))
                .spawn()
                .expect("the delivery-app bootstrap starts");
            self.bootstraps.push(Bootstrap {
                function,
                child,
                log,
            });
        }
    }

    /// Invokes `function` with `payload` through the emulator's Invoke API (it queues the
    /// event until the function's process asks for it).
    async fn invoke(&mut self, function: &str, payload: &Value) -> Invocation {
        let text = serde_json::to_string(payload).expect("a payload is JSON");
        self.invoke_text(function, text).await
    }

    /// As [`Stack::invoke`], with the payload's text as it is (JSON or not).
    async fn invoke_text(&mut self, function: &str, payload: String) -> Invocation {
        let sent = self
            .http
            .post(self.emulator.invoke_url(function))
            .header("content-type", "application/json")
            .body(payload)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                self.check_alive();
                panic!("invoking {function} failed: {e}");
            }
        };
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let payload = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{function} answered {status} with non-JSON {text:?}: {e}"));
        Invocation { status, payload }
    }

    /// Invokes `function` and expects success (200): its result.
    async fn call(&mut self, function: &str, payload: &Value) -> Value {
        let got = self.invoke(function, payload).await;
        assert_eq!(
            got.status,
            StatusCode::OK,
            "{function} failed: {}",
            got.payload
        );
        got.payload
    }

    /// An HTTP request to an HTTP function, as API Gateway's HTTP API sends it.
    async fn request(
        &mut self,
        function: &str,
        route: &str,
        path: &str,
        body: Option<Body>,
    ) -> HttpResponse {
        let event = http_event(route, path, body);
        let answer = self.call(function, &event).await;
        HttpResponse::from_lambda(&answer)
    }

    fn check_alive(&mut self) {
        for b in &mut self.bootstraps {
            if let Ok(Some(status)) = b.child.try_wait() {
                panic!(
                    "the bootstrap of {} exited ({status}):\n{}",
                    b.function,
                    read_log(&b.log)
                );
            }
        }
    }
}

/// A request body: JSON, or bytes with a content type (sent base64-encoded).
enum Body {
    Json(Value),
    Binary(&'static str, Vec<u8>),
}

/// An API Gateway HTTP API (payload format 2.0) event for `route` (`"PUT
/// /uploads/{name}"`) at `path`, with its path parameters.
fn http_event(route: &str, path: &str, body: Option<Body>) -> Value {
    let (method, template) = route.split_once(' ').expect("\"METHOD /path\"");
    let mut headers = json!({
        "host": "e2e0000001.execute-api.us-east-1.amazonaws.com",
        "user-agent": "nube-aws-e2e",
        "x-forwarded-proto": "https",
    });
    let mut event = json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": "",
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "e2e0000001",
            "domainName": "e2e0000001.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "e2e0000001",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "nube-aws-e2e",
            },
            "requestId": request_id(),
            "routeKey": route,
            "stage": "$default",
            "time": "01/May/2026:10:00:00 +0000",
            "timeEpoch": 1_777_629_600_000u64,
        },
        "isBase64Encoded": false,
    });
    let params: serde_json::Map<String, Value> = template
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(t, p)| {
            let name = t.strip_prefix('{')?.strip_suffix('}')?;
            Some((name.to_owned(), Value::String(p.to_owned())))
        })
        .collect();
    if !params.is_empty() {
        event["pathParameters"] = Value::Object(params);
    }
    match body {
        None => {}
        Some(Body::Json(v)) => {
            headers["content-type"] = json!("application/json");
            event["body"] = json!(v.to_string());
        }
        Some(Body::Binary(content_type, bytes)) => {
            headers["content-type"] = json!(content_type);
            event["body"] = json!(BASE64.encode(&bytes));
            event["isBase64Encoded"] = json!(true);
        }
    }
    event["headers"] = headers;
    event
}

fn request_id() -> String {
    format!(
        "{:032x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// An HTTP API (2.0) response as the bootstrap returned it.
#[derive(Debug)]
struct HttpResponse {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    base64: bool,
}

impl HttpResponse {
    fn from_lambda(answer: &Value) -> HttpResponse {
        let status = answer["statusCode"]
            .as_u64()
            .unwrap_or_else(|| panic!("an HTTP API response has a statusCode: {answer}"))
            as u16;
        let headers = answer["headers"]
            .as_object()
            .map(|h| {
                h.iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let base64 = answer["isBase64Encoded"].as_bool().unwrap_or(false);
        let text = answer["body"].as_str().unwrap_or("");
        let body = if base64 {
            BASE64
                .decode(text)
                .unwrap_or_else(|e| panic!("isBase64Encoded, and the body is not base64: {e}"))
        } else {
            text.as_bytes().to_vec()
        };
        HttpResponse {
            status,
            headers,
            body,
            base64,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "a JSON body, got {:?}: {e}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn content_type(&self) -> &str {
        self.headers.get("content-type").map_or("", String::as_str)
    }
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 200])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

// ---- moto: S3 and SQS set-up over plain HTTP ----------------------------------------

/// An SQS call in the JSON protocol. Moto tells services apart by the credential scope
/// of the `Authorization` header and checks no signatures, so the scope is all it needs.
async fn sqs(http: &reqwest::Client, moto: &Moto, action: &str, body: Value) -> Value {
    let response = http
        .post(moto.endpoint())
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", format!("AmazonSQS.{action}"))
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/{REGION}/sqs/aws4_request, \
                 SignedHeaders=host;x-amz-target, Signature=0"
            ),
        )
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("SQS {action}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "SQS {action}: {status} {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("SQS {action}: {e}: {text}"))
}

/// An unsigned S3 request (moto's default service for those).
async fn s3(http: &reqwest::Client, moto: &Moto, path_and_query: &str, body: String) {
    let response = http
        .put(format!("{}{path_and_query}", moto.endpoint()))
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("S3 PUT {path_and_query}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(
        status.is_success(),
        "S3 PUT {path_and_query}: {status} {text}"
    );
}

/// Creates the queue, the bucket, and the bucket's notification of objects created under
/// `original/` to the queue (as a deployment's S3 → Lambda notification, with the queue
/// standing in for Lambda). Returns the queue's URL.
async fn bucket_with_notifications(http: &reqwest::Client, moto: &Moto, bucket: &str) -> String {
    let created = sqs(http, moto, "CreateQueue", json!({"QueueName": QUEUE})).await;
    let url = created["QueueUrl"].as_str().expect("QueueUrl").to_owned();
    let attributes = sqs(
        http,
        moto,
        "GetQueueAttributes",
        json!({"QueueUrl": url, "AttributeNames": ["QueueArn"]}),
    )
    .await;
    let arn = attributes["Attributes"]["QueueArn"]
        .as_str()
        .expect("QueueArn");
    s3(http, moto, &format!("/{bucket}"), String::new()).await;
    let prefix = nube_images::ORIGINAL_PREFIX;
    let notification = format!(
        r#"<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <QueueConfiguration>
    <Id>make-thumbnails</Id>
    <Queue>{arn}</Queue>
    <Event>s3:ObjectCreated:*</Event>
    <Filter><S3Key><FilterRule><Name>prefix</Name><Value>{prefix}</Value></FilterRule></S3Key></Filter>
  </QueueConfiguration>
</NotificationConfiguration>"#
    );
    s3(http, moto, &format!("/{bucket}?notification"), notification).await;
    url
}

/// The next S3 notification on the queue (deleted from it): moto's message body is the
/// S3 event JSON, exactly what S3 would pass to Lambda.
async fn next_s3_event(http: &reqwest::Client, moto: &Moto, queue_url: &str) -> Value {
    let started = Instant::now();
    loop {
        let got = sqs(
            http,
            moto,
            "ReceiveMessage",
            json!({"QueueUrl": queue_url, "MaxNumberOfMessages": 1, "WaitTimeSeconds": 1}),
        )
        .await;
        if let Some(message) = got["Messages"].as_array().and_then(|m| m.first()) {
            sqs(
                http,
                moto,
                "DeleteMessage",
                json!({"QueueUrl": queue_url, "ReceiptHandle": message["ReceiptHandle"]}),
            )
            .await;
            let body = message["Body"].as_str().expect("a message body");
            return serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("the S3 notification is JSON: {e}: {body}"));
        }
        assert!(
            started.elapsed() < PATIENCE,
            "no S3 notification reached queue {queue_url} within {PATIENCE:?}"
        );
    }
}

// ---- DynamoDB Streams → the Lambda event ---------------------------------------------

fn streams_client(moto: &Moto) -> aws_sdk_dynamodbstreams::Client {
    use aws_sdk_dynamodbstreams::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "moto"))
        .endpoint_url(moto.endpoint())
        .build();
    aws_sdk_dynamodbstreams::Client::from_conf(config)
}

/// DynamoDB JSON (`{"S": "x"}`), as Lambda writes stream images into events.
fn attribute_json(value: &A) -> Value {
    match value {
        A::S(s) => json!({ "S": s }),
        A::N(n) => json!({ "N": n }),
        A::B(b) => json!({ "B": BASE64.encode(b.as_ref()) }),
        A::Ss(v) => json!({ "SS": v }),
        A::Ns(v) => json!({ "NS": v }),
        A::Bs(v) => {
            json!({ "BS": v.iter().map(|b| BASE64.encode(b.as_ref())).collect::<Vec<_>>() })
        }
        A::M(m) => json!({ "M": image_json(m) }),
        A::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        A::Null(n) => json!({ "NULL": n }),
        A::Bool(b) => json!({ "BOOL": b }),
        other => panic!("an attribute type this test does not know: {other:?}"),
    }
}

fn image_json(image: &HashMap<String, A>) -> Value {
    Value::Object(
        image
            .iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect(),
    )
}

/// One stream record as Lambda's DynamoDB event source puts it into an event.
fn lambda_record(record: &Record, stream_arn: &str) -> Value {
    let d = record.dynamodb.as_ref().expect("a record has dynamodb");
    let mut dynamodb = json!({
        "Keys": image_json(d.keys.as_ref().expect("Keys")),
        "SequenceNumber": d.sequence_number,
        "SizeBytes": d.size_bytes,
        "StreamViewType": d.stream_view_type.as_ref().map(|v| v.as_str()),
    });
    if let Some(t) = d.approximate_creation_date_time {
        dynamodb["ApproximateCreationDateTime"] = json!(t.secs());
    }
    if let Some(image) = &d.new_image {
        dynamodb["NewImage"] = image_json(image);
    }
    json!({
        "eventID": record.event_id,
        "eventName": record.event_name.as_ref().map(|e| e.as_str()),
        "eventVersion": record.event_version.as_deref().unwrap_or("1.1"),
        "eventSource": record.event_source.as_deref().unwrap_or("aws:dynamodb"),
        "awsRegion": record.aws_region.as_deref().unwrap_or(REGION),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    })
}

/// A reader of one table's stream (moto gives a table one shard), from its start.
struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    arn: String,
    iterator: String,
}

impl StreamReader {
    async fn open(moto: &Moto, dynamodb: &dynamodb::Client, table: &str) -> StreamReader {
        let arn = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .expect("DescribeTable")
            .table
            .and_then(|t| t.latest_stream_arn)
            .unwrap_or_else(|| panic!("table {table} has a stream"));
        let client = streams_client(moto);
        let shards = client
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .expect("DescribeStream")
            .stream_description
            .and_then(|s| s.shards)
            .unwrap_or_default();
        assert_eq!(shards.len(), 1, "one shard: {shards:?}");
        let iterator = client
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shards[0].shard_id.clone().expect("a shard id"))
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator
            .expect("a shard iterator");
        StreamReader {
            client,
            arn,
            iterator,
        }
    }

    /// Reads on until a record that `wanted` accepts: it and the records before it.
    async fn until(&mut self, what: &str, wanted: impl Fn(&Record) -> bool) -> Vec<Record> {
        let started = Instant::now();
        let mut read = Vec::new();
        loop {
            let got = self
                .client
                .get_records()
                .shard_iterator(&self.iterator)
                .send()
                .await
                .expect("GetRecords");
            if let Some(next) = got.next_shard_iterator {
                self.iterator = next;
            }
            let records = got.records.unwrap_or_default();
            let found = records.iter().any(&wanted);
            read.extend(records);
            if found {
                return read;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the stream had no {what} within {PATIENCE:?}; read {read:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The Lambda event for `records`.
    fn event(&self, records: &[Record]) -> Value {
        json!({ "Records": records.iter().map(|r| lambda_record(r, &self.arn)).collect::<Vec<_>>() })
    }
}

fn image_str<'a>(record: &'a Record, attribute: &str) -> Option<&'a str> {
    match record
        .dynamodb
        .as_ref()?
        .new_image
        .as_ref()?
        .get(attribute)?
    {
        A::S(s) | A::N(s) => Some(s.as_str()),
        _ => None,
    }
}

fn is_order_event(record: &Record, order_id: &str, version: &str) -> bool {
    record.event_name.as_ref().map(|e| e.as_str()) == Some("INSERT")
        && image_str(record, "orderId") == Some(order_id)
        && image_str(record, "version") == Some(version)
}

// ---- the test -----------------------------------------------------------------------

fn dynamodb_client(moto: &Moto) -> dynamodb::Client {
    use dynamodb::config::{BehaviorVersion, Credentials, Region};
    let config = dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "moto"))
        .endpoint_url(moto.endpoint())
        .build();
    dynamodb::Client::from_conf(config)
}

async fn start() -> (Stack, HashMap<String, String>, String) {
    let app = delivery_app::app();
    let functions: Vec<String> = app
        .functions()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    let emulator = Emulator::start(&functions);
    let moto = Moto::start();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .unwrap();

    // The deployment: one table per collection (key `id`, stream NEW_IMAGE), one bucket
    // per bucket, and their names in NUBE_TABLE_* / NUBE_BUCKET_*.
    let dynamodb = dynamodb_client(&moto);
    let store = DynamoDbStore::new(dynamodb.clone(), TableNaming::new().with_prefix(PREFIX));
    let mut env = Vec::new();
    let mut tables = HashMap::new();
    for collection in app.collections() {
        let table = store
            .ensure_table(collection)
            .await
            .unwrap_or_else(|e| panic!("table for {collection}: {e}"));
        env.push((table_env_var(collection), table.clone()));
        tables.insert(collection.to_owned(), table);
    }
    let buckets: Vec<&str> = app.buckets().collect();
    assert_eq!(buckets, [nube_images::BUCKET], "the app's one bucket");
    let bucket = format!("{PREFIX}{}", nube_images::BUCKET);
    let queue_url = bucket_with_notifications(&http, &moto, &bucket).await;
    env.push((bucket_env_var(nube_images::BUCKET), bucket));

    let mut stack = Stack {
        moto,
        emulator,
        bootstraps: Vec::new(),
        http,
    };
    stack.start_bootstraps(&env);
    (stack, tables, queue_url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_serves_every_trigger_through_a_lambda_runtime_api_emulator() {
    let started = Instant::now();
    let (mut stack, tables, queue_url) = start().await;
    let mut running: Vec<&str> = stack
        .bootstraps
        .iter()
        .map(|b| b.function.as_str())
        .collect();
    running.sort_unstable();
    assert_eq!(
        running,
        [
            "cleanup-expired-orders",
            "images-api",
            "make-thumbnails",
            "orders-api",
            "orders-read-model",
            "todos"
        ],
        "one bootstrap per function of the delivery app, and this test drives each of them"
    );

    // ---- HTTP: todos ----
    let created = stack
        .request(
            "todos",
            "POST /todos",
            "/todos",
            Some(Body::Json(json!({"title": "buy milk"}))),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created);
    assert!(created.content_type().starts_with("application/json"));
    assert!(!created.base64, "JSON answers are text");
    let todo = created.json();
    assert_eq!(todo["title"], "buy milk");
    assert_eq!(todo["completed"], false);
    let todo_id = todo["id"].as_str().expect("a todo id").to_owned();
    let listed = stack.request("todos", "GET /todos", "/todos", None).await;
    assert_eq!(listed.status, 200);
    let list = listed.json();
    assert!(
        list.as_array()
            .is_some_and(|l| l.iter().any(|t| t["id"] == todo_id.as_str())),
        "GET /todos lists the new todo: {list}"
    );
    let missing = stack
        .request("todos", "GET /todos/{id}", "/todos/no-such-todo", None)
        .await;
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"]["message"].is_string());

    // ---- HTTP with a binary body, then S3 → SQS → make-thumbnails ----
    let original = png(320, 240);
    let uploaded = stack
        .request(
            nube_images::API_FUNCTION,
            "PUT /uploads/{name}",
            "/uploads/cat.png",
            Some(Body::Binary("image/png", original.clone())),
        )
        .await;
    assert_eq!(uploaded.status, 202, "{:?}", uploaded);
    assert_eq!(uploaded.json(), json!({"key": "original/cat.png"}));
    let not_yet = stack
        .request(
            nube_images::API_FUNCTION,
            "GET /images/{name}",
            "/images/cat.png",
            None,
        )
        .await;
    assert_eq!(not_yet.status, 404, "no record before make-thumbnails ran");

    // S3 posts an `s3:TestEvent` to a queue when its notification is configured; nube's
    // blob functions acknowledge those. Then comes the upload's notification.
    let mut s3_event = next_s3_event(&stack.http, &stack.moto, &queue_url).await;
    if s3_event["Event"] == "s3:TestEvent" {
        let acknowledged = stack.call(nube_images::THUMBNAIL_FUNCTION, &s3_event).await;
        assert_eq!(acknowledged, Value::Null);
        s3_event = next_s3_event(&stack.http, &stack.moto, &queue_url).await;
    }
    let record = &s3_event["Records"][0];
    assert_eq!(record["eventSource"], "aws:s3", "{s3_event}");
    // Keys come form-URL-encoded; moto encodes `/` too (S3 leaves it), same key decoded.
    let key = record["s3"]["object"]["key"].as_str().unwrap_or("");
    assert_eq!(key.replace("%2F", "/"), "original/cat.png", "{s3_event}");
    assert_eq!(record["s3"]["object"]["size"], original.len());
    let done = stack.call(nube_images::THUMBNAIL_FUNCTION, &s3_event).await;
    assert_eq!(done, Value::Null, "a blob function answers null");

    let image = stack
        .request(
            nube_images::API_FUNCTION,
            "GET /images/{name}",
            "/images/cat.png",
            None,
        )
        .await;
    assert_eq!(image.status, 200, "{:?}", image);
    let image = image.json();
    assert_eq!(image["status"], "ready", "{image}");
    assert_eq!(image["width"], 320);
    assert_eq!(image["height"], 240);
    assert_eq!(image["format"], "png");
    assert_eq!(image["size"], original.len());
    assert_eq!(image["thumbnailKey"], "thumbnails/cat.png");
    let thumbnail = stack
        .request(
            nube_images::API_FUNCTION,
            "GET /images/{name}/thumbnail",
            "/images/cat.png/thumbnail",
            None,
        )
        .await;
    assert_eq!(thumbnail.status, 200);
    assert_eq!(thumbnail.content_type(), "image/jpeg");
    assert!(thumbnail.base64, "a binary answer is base64-encoded");
    let decoded = image::load_from_memory_with_format(&thumbnail.body, image::ImageFormat::Jpeg)
        .expect("the thumbnail is a JPEG");
    assert_eq!(
        (decoded.width(), decoded.height()),
        (nube_images::THUMBNAIL_SIZE, nube_images::THUMBNAIL_SIZE)
    );

    // ---- DynamoDB Streams: orders ----
    let placed = stack
        .request(
            nube_orders::API_FUNCTION,
            "POST /orders",
            "/orders",
            Some(Body::Json(json!({
                "userId": "u1",
                "restaurantId": "r1",
                "items": [{"sku": "pizza", "qty": 2, "price": 9.5}],
            }))),
        )
        .await;
    assert_eq!(placed.status, 201, "{:?}", placed);
    let placed = placed.json();
    assert_eq!(placed["status"], "PENDING");
    let order_id = placed["orderId"].as_str().expect("an orderId").to_owned();

    let table = &tables[nube_orders::EVENTS];
    let dynamodb = dynamodb_client(&stack.moto);
    let mut stream = StreamReader::open(&stack.moto, &dynamodb, table).await;
    let created = stream
        .until("OrderCreated", |r| is_order_event(r, &order_id, "1"))
        .await;
    let event = stream.event(&created);
    assert_eq!(event["Records"][0]["eventSource"], "aws:dynamodb");
    assert_eq!(
        event["Records"][0]["dynamodb"]["StreamViewType"],
        "NEW_IMAGE"
    );
    let batch = stack.call(nube_orders::READ_MODEL_FUNCTION, &event).await;
    assert_eq!(batch, json!({"batchItemFailures": []}), "{event}");

    // The read model appended OrderConfirmed: the stream's next INSERT, delivered too.
    let confirmed = stream
        .until("OrderConfirmed", |r| is_order_event(r, &order_id, "2"))
        .await;
    let batch = stack
        .call(nube_orders::READ_MODEL_FUNCTION, &stream.event(&confirmed))
        .await;
    assert_eq!(batch, json!({"batchItemFailures": []}));
    let order = stack
        .request(
            nube_orders::API_FUNCTION,
            "GET /orders/{id}",
            &format!("/orders/{order_id}"),
            None,
        )
        .await;
    assert_eq!(order.status, 200, "{:?}", order);
    let order = order.json();
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    assert_eq!(order["version"], 2);
    assert_eq!(order["total"], 19.0);
    assert!(order["estimatedDeliveryAt"].is_string(), "{order}");

    // ---- the timer, as EventBridge sends it ----
    let tick = json!({
        "version": "0",
        "id": "e2e-tick-1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-05-01T02:00:00Z",
        "region": REGION,
        "resources": [format!("arn:aws:events:{REGION}:123456789012:rule/cleanup")],
        "detail": {},
    });
    assert_eq!(
        stack.call(nube_orders::CLEANUP_FUNCTION, &tick).await,
        Value::Null
    );

    // ---- a mismatched event: a clear Lambda error, and the process serves on ----
    let mismatch = stack.invoke("todos", &s3_event).await;
    assert_eq!(
        mismatch.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the emulator answers a function error with 500: {}",
        mismatch.payload
    );
    assert_eq!(mismatch.payload["errorType"], "nube.EventMismatch");
    let message = mismatch.payload["errorMessage"].as_str().unwrap_or("");
    assert!(
        message.contains("\"todos\"") && message.contains("S3"),
        "the message names the function and the payload: {message}"
    );
    // ---- a payload that is not JSON: the bytes reach nube as they came (nube_aws::payload,
    // not lambda_runtime's own deserializer), and nube refuses them with its own error ----
    let garbled = stack
        .invoke_text("todos", r#"{"version": "2.0", garbled"#.to_owned())
        .await;
    assert_eq!(garbled.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        garbled.payload["errorType"], "nube.InvalidEvent",
        "{}",
        garbled.payload
    );
    let again = stack.request("todos", "GET /todos", "/todos", None).await;
    assert_eq!(
        again.status, 200,
        "todos serves after the failed invocations"
    );

    stack.check_alive();
    eprintln!(
        "the delivery app's bootstrap served every trigger through cargo-lambda in {:.1?}",
        started.elapsed()
    );
}

/// A bootstrap whose init fails tells the Runtime API why (`/runtime/init/error`), so
/// the invocation that started the sandbox answers with nube's reason, not Lambda's
/// bare `Runtime.ExitError`; and the process exits with a failure code. Here: a
/// `_HANDLER` that names no function of the app, and a variable lambda_runtime needs
/// missing (it panics).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_init_answers_the_waiting_invocation_with_its_reason() {
    let function = "no-such-function";
    let emulator = Emulator::start(&[function.to_owned()]);
    let answer = init_error(&emulator, function, None).await;
    assert_eq!(answer["errorType"], "nube.InitError", "{answer}");
    let message = answer["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("\"no-such-function\"") && message.contains("orders-api"),
        "the reason names the handler and the functions it could be: {message}"
    );

    // An emulator of its own: cargo-lambda's hands an init error to the first
    // function it has queued invocations for, even an emptied queue.
    let emulator = Emulator::start(&["todos".to_owned()]);
    let answer = init_error(&emulator, "todos", Some("AWS_LAMBDA_FUNCTION_VERSION")).await;
    assert_eq!(answer["errorType"], "nube.InitError", "{answer}");
    let message = answer["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("panicked while starting")
            && message.contains("AWS_LAMBDA_FUNCTION_VERSION"),
        "{message}"
    );

    // With no Runtime API answering, the bootstrap says so and still exits at once.
    let started = Instant::now();
    let text = failed_init(
        &format!("127.0.0.1:{}", nube::testing::free_port()),
        function,
        None,
    );
    assert!(
        text.contains("could not report the init error") && text.contains("Runtime.ExitError"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{text}");
}

/// Invokes `handler` through `emulator` and starts its bootstrap (without the variable
/// `missing`) until the invocation is answered: the answer. Lambda runs init again for
/// the next invocation; so does this, in case a bootstrap reported before the emulator
/// had queued the invocation.
async fn init_error(emulator: &Emulator, handler: &str, missing: Option<&str>) -> Value {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let mut invoke = tokio::spawn(
        http.post(emulator.invoke_url(handler))
            .header("content-type", "application/json")
            .body("{}")
            .send(),
    );
    let mut logs = Vec::new();
    let response = loop {
        assert!(
            logs.len() < 5,
            "the invocation got no answer after {} failed inits; the last log:\n{}\ncargo-lambda's log:\n{}",
            logs.len(),
            logs.last().map_or("", String::as_str),
            emulator.log_text()
        );
        let api = emulator.runtime_api(handler);
        let text = tokio::task::spawn_blocking({
            let handler = handler.to_owned();
            let missing = missing.map(str::to_owned);
            move || failed_init(&api, &handler, missing.as_deref())
        })
        .await
        .unwrap();
        logs.push(text);
        if let Ok(answered) = tokio::time::timeout(Duration::from_secs(5), &mut invoke).await {
            break answered.unwrap().expect("the invocation is answered");
        }
    };
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("the init error is JSON ({e}): {text}"))
}

/// Runs the bootstrap for `handler` against `runtime_api` (without the variable
/// `missing`) until it exits, expecting a failure: what it logged.
fn failed_init(runtime_api: &str, handler: &str, missing: Option<&str>) -> String {
    let log = log_file();
    let mut command = bootstrap_command(runtime_api, handler, &log);
    command.env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128");
    if let Some(variable) = missing {
        command.env_remove(variable);
    }
    let mut child = command.spawn().expect("the delivery-app bootstrap starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > PATIENCE {
            let _ = child.kill();
            panic!(
                "the bootstrap did not exit within {PATIENCE:?}:\n{}",
                read_log(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = read_log(&log);
    assert!(!status.success(), "a failed init exits {status}:\n{text}");
    text
}
