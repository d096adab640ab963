//! The AWS emulator harness works: moto answers the DynamoDB, Secrets Manager and EC2 calls the
//! product uses, through the real AWS SDK, with no AWS account.

use integration_tests::moto::Moto;

#[tokio::test]
async fn moto_answers_dynamodb_secrets_manager_and_ec2() {
    let moto = Moto::start();
    let conf = moto.sdk_config().await;

    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let table = format!("smoke-{}", std::process::id());
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    ddb.create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("pk").attribute_type(ScalarAttributeType::S).build().unwrap(),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().unwrap())
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table");
    ddb.put_item().table_name(&table).item("pk", AttributeValue::S("a".into())).send().await.unwrap();
    // A conditional put on an existing key fails: the store's claims depend on this.
    let dup = ddb
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("a".into()))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    assert!(dup.is_err(), "conditional put on an existing key succeeded");

    let sm = aws_sdk_secretsmanager::Client::new(&conf);
    let name = format!("smoke/{}", std::process::id());
    sm.create_secret().name(&name).secret_string(r#"{"token":"t0k"}"#).send().await.unwrap();
    let got = sm.get_secret_value().secret_id(&name).send().await.unwrap();
    assert_eq!(got.secret_string(), Some(r#"{"token":"t0k"}"#));

    let ec2 = aws_sdk_ec2::Client::new(&conf);
    let r = ec2.describe_instances().send().await.expect("describe instances");
    let _ = r.reservations();
}
