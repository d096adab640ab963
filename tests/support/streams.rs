//! Reads a DynamoDB table's stream the way a Lambda event source mapping does, so a function can be
//! fed the real records: `DescribeTable` (the stream ARN), `DescribeStream` (its shards),
//! `GetShardIterator` (`TRIM_HORIZON`) and `GetRecords`, each record completed with the
//! `eventSourceARN` Lambda adds. The calls are the services' JSON protocol over HTTP, because Lambda
//! hands a function the records in exactly that wire shape; the emulator does not check signatures, so
//! the `Authorization` header only names the signing scope (which routes the request).

use serde_json::{Value, json};

/// A reader positioned after the records already returned.
#[derive(Debug)]
pub struct StreamReader {
    http: reqwest::Client,
    endpoint: String,
    arn: String,
    /// Open shard iterators (one per shard seen).
    iterators: Vec<String>,
}

impl StreamReader {
    /// Opens the stream of `table` at its first record.
    pub async fn open(endpoint: &str, table: &str) -> StreamReader {
        let http = shared::http::build_client(&Default::default()).unwrap();
        let t = call(&http, endpoint, "DynamoDB_20120810.DescribeTable", json!({"TableName": table})).await;
        let arn = t["Table"]["LatestStreamArn"].as_str().expect("the table has a stream").to_string();
        let d = call(&http, endpoint, "DynamoDBStreams_20120810.DescribeStream", json!({"StreamArn": arn})).await;
        let mut iterators = vec![];
        for shard in d["StreamDescription"]["Shards"].as_array().cloned().unwrap_or_default() {
            let it = call(
                &http,
                endpoint,
                "DynamoDBStreams_20120810.GetShardIterator",
                json!({"StreamArn": arn, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await;
            iterators.push(it["ShardIterator"].as_str().expect("iterator").to_string());
        }
        StreamReader { http, endpoint: endpoint.to_string(), arn, iterators }
    }

    /// Every record written since the last read, in order, as a Lambda event's `Records` entries.
    pub async fn read(&mut self) -> Vec<Value> {
        let mut out = vec![];
        for it in &mut self.iterators {
            loop {
                let r = call(
                    &self.http,
                    &self.endpoint,
                    "DynamoDBStreams_20120810.GetRecords",
                    json!({"ShardIterator": it, "Limit": 1000}),
                )
                .await;
                let records = r["Records"].as_array().cloned().unwrap_or_default();
                if let Some(next) = r["NextShardIterator"].as_str() {
                    *it = next.to_string();
                }
                let done = records.is_empty();
                for mut rec in records {
                    rec["eventSourceARN"] = json!(self.arn);
                    out.push(rec);
                }
                if done {
                    break;
                }
            }
        }
        out
    }
}

async fn call(http: &reqwest::Client, endpoint: &str, target: &str, body: Value) -> Value {
    let res = http
        .post(format!("{endpoint}/"))
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", target)
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20261122/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{target}: {e}"));
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    assert!(status.is_success(), "{target} answered {status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{target}: not JSON ({e}): {text}"))
}
