//! The AutessaDB API (seed 003, SPECS §3.4 and §5.3), tested as a client that read only
//! those: every endpoint on a small data set with hand-computed answers, both value forms,
//! pagination at its bounds, per-key permissions, resource ids, uploads with a bad line
//! then a good file, computation status, and the `{errors}` envelope with the rate-limit
//! headers on every answer. Tables are made through the native API (the vendor makes them
//! in its Builder).

use agentd::keys::{self, KeyRequest};
use serde_json::{Value, json};

use crate::support::*;

const LIMIT_HEADERS: [&str; 4] = ["x-ratelimit-limit-minute", "x-ratelimit-remaining-minute", "x-ratelimit-limit-day", "x-ratelimit-remaining-day"];

/// 6 products: name, category, price, stock, active (uniqueIds 1..=6).
const PRODUCTS: [(&str, &str, f64, Option<i64>, bool); 6] = [
    ("Apple", "fruit", 1.2, Some(50), true),
    ("Banana", "fruit", 0.5, Some(0), true),
    ("Carrot", "vegetable", 0.8, Some(30), true),
    ("Donut", "bakery", 2.5, Some(12), false),
    ("Eggplant", "vegetable", 3.0, None, true),
    ("Fig", "fruit", 4.0, Some(5), false),
];

/// A POST the vendor's way: `Authorization: <key>`. (status, headers, body)
async fn call(app: &TestApp, key: &str, path: &str, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = app.http.post(app.url(path)).header("Authorization", key).json(&body).send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.json().await.expect("every answer is JSON"))
}

/// `POST /clients/autessadb/<endpoint>?resourceId=<table>` with the project's key.
async fn db(app: &TestApp, endpoint: &str, table: u64, body: Value) -> (u16, Value) {
    db_as(app, &app.key, endpoint, table, body).await
}

async fn db_as(app: &TestApp, key: &str, endpoint: &str, table: u64, body: Value) -> (u16, Value) {
    let (status, headers, body) = call(app, key, &format!("/clients/autessadb/{endpoint}?resourceId={table}"), body).await;
    assert_limit_headers(&headers, endpoint);
    assert!(body["errors"].is_array(), "{endpoint}: every answer has errors: {body}");
    (status, body)
}

fn assert_limit_headers(headers: &reqwest::header::HeaderMap, what: &str) {
    for name in LIMIT_HEADERS {
        let value = headers.get(name).unwrap_or_else(|| panic!("{what}: no {name}"));
        assert!(value.to_str().unwrap().parse::<u64>().is_ok(), "{what}: {name} is an integer");
    }
}

/// A native table; its resource number (the Autessa `resourceId`).
async fn table(app: &TestApp, body: Value) -> u64 {
    let r = app.post("/v1/tables", body).await;
    assert_eq!(r.status(), 201);
    let table: Value = r.json().await.unwrap();
    table["resource_id"].as_u64().expect("resource_id")
}

/// The products table, filled through `insert` with `rows`.
async fn products(app: &TestApp) -> u64 {
    let id = table(
        app,
        json!({"name": "products", "columns": [
            {"name": "name", "type": "string", "required": true},
            {"name": "category", "type": "string"},
            {"name": "price", "type": "float"},
            {"name": "stock", "type": "integer"},
            {"name": "active", "type": "boolean"},
        ]}),
    )
    .await;
    let rows: Vec<Value> = PRODUCTS
        .iter()
        .map(|(name, category, price, stock, active)| json!({"name": name, "category": category, "price": price, "stock": stock, "active": active}))
        .collect();
    let (status, body) = db(app, "insert", id, json!({"tableId": id, "rows": rows})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"recordsImpacted": 6, "insertedIds": [1, 2, 3, 4, 5, 6], "computationStatus": "DONE", "errors": []}));
    id
}

/// `key` of the rows of an answer's `table`.
fn column(body: &Value, key: &str) -> Vec<Value> {
    body["table"].as_array().unwrap_or_else(|| panic!("no table: {body}")).iter().map(|r| r[key].clone()).collect()
}

fn ids(body: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = column(body, "uniqueId").iter().map(|v| v.as_i64().unwrap()).collect();
    ids.sort();
    ids
}

fn statement(operator: &str, column: &str, value: Value) -> Value {
    json!({"operator": operator, "column": {"tableId": null, "tableAlias": null, "columnName": column, "columnAlias": null, "functions": []}, "value": value})
}

fn errors(body: &Value) -> Vec<String> {
    body["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_owned()).collect()
}

async fn key_with_id(app: &TestApp) -> (String, String) {
    let req = KeyRequest { project: "default".into(), name: "table key".into(), tier: "unlimited".into(), per_minute: None, per_day: None };
    let (secret, record) = keys::create(app.store().as_ref(), &req).await.expect("key");
    (secret, record.id.to_string())
}

async fn grant(app: &TestApp, table: u64, key_id: &str, permissions: Value) {
    let r = app.http.put(app.url(&format!("/v1/tables/{table}/permissions/{key_id}"))).bearer_auth(&app.key).json(&json!({"permissions": permissions})).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn autessadb_rows_values_and_the_envelope() {
    let app = spawn_app().await;
    let p = products(&app).await;

    // Both value forms; the new row is flat with the system columns.
    let (status, body) = db(&app, "insert", p, json!({"tableId": p, "values": {"name": "Grape", "category": "fruit", "price": 2.0, "stock": 9, "active": true}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["insertedId"].clone(), body["computationStatus"].clone(), body["errors"].clone()), (json!(7), json!("DONE"), json!([])));
    let row = body["newRow"].as_object().unwrap();
    assert_eq!((row["uniqueId"].clone(), row["name"].clone(), row["price"].clone(), row["stock"].clone()), (json!(7), json!("Grape"), json!(2.0), json!(9)));
    assert!(row["createdAt"].as_str().unwrap().ends_with('Z') && row["lastUpdated"].is_string(), "{body}");
    assert!(!row.contains_key("computationStatus") && !row.contains_key("id"), "{body}");
    let pairs = json!({
        "name": {"columnType": "STRING", "value": "Honeydew"},
        "category": {"columnType": "UNKNOWN", "value": "fruit"},
        "price": {"columnType": "FLOAT", "value": "3.5"},
        "stock": {"columnType": "INTEGER", "value": 4},
        "active": {"columnType": "BOOLEAN", "value": false},
    });
    let (status, body) = db(&app, "insert", p, json!({"values": pairs})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["newRow"]["price"], 3.5);
    assert_eq!(body["newRow"]["active"], false);

    // One row, by rowId or the legacy uniqueId.
    let (status, body) = db(&app, "get-single-row", p, json!({"tableId": p, "rowId": 8})).await;
    assert_eq!((status, body["row"]["name"].clone(), body["errors"].clone()), (200, json!("Honeydew"), json!([])));
    assert_eq!(db(&app, "get-single-row", p, json!({"uniqueId": "2"})).await.1["row"]["name"], "Banana");
    assert_eq!(db(&app, "get-single-row", p, json!({"rowId": 99})).await, (404, json!({"errors": ["Row 99 not found"]})));

    let (status, body) = db(&app, "update", p, json!({"rowId": 2, "values": {"stock": 40, "category": {"columnType": "STRING", "value": "tropical"}}})).await;
    assert_eq!((status, body["recordsImpacted"].clone(), body["computationStatus"].clone()), (200, json!(1), json!("DONE")), "{body}");
    assert_eq!((body["updatedRow"]["stock"].clone(), body["updatedRow"]["category"].clone(), body["updatedRow"]["name"].clone()), (json!(40), json!("tropical"), json!("Banana")));
    assert_eq!(db(&app, "update", p, json!({"rowId": 99, "values": {"stock": 1}})).await.0, 404);

    assert_eq!(db(&app, "delete-row", p, json!({"rowId": 8})).await, (200, json!({"recordsImpacted": 1, "errors": []})));
    assert_eq!(db(&app, "delete-row", p, json!({"rowId": 8})).await, (404, json!({"errors": ["Row 8 not found"]})));
    assert_eq!(db(&app, "get-single-row", p, json!({"rowId": 8})).await.0, 404);

    // Bad input names the field.
    let bad = |body: Value| {
        let app = &app;
        async move { db(app, "insert", p, body).await }
    };
    assert_eq!(bad(json!({"values": {"name": "x", "price": "abc"}})).await, (400, json!({"errors": ["values.price: `abc` is not a number"]})));
    assert_eq!(bad(json!({"values": {"name": "x", "price": true}})).await, (400, json!({"errors": ["values.price: expected a number, got a boolean"]})));
    assert_eq!(bad(json!({"values": {"name": "x", "nope": 1}})).await, (400, json!({"errors": ["values.nope: the table has no column `nope`"]})));
    assert_eq!(bad(json!({"values": {"price": 1}})).await, (400, json!({"errors": ["values.name is required (the column is required)"]})));
    assert_eq!(bad(json!({"values": {"name": {"columnType": "MONEY", "value": "x"}}})).await.0, 400);
    assert!(errors(&bad(json!({})).await.1)[0].starts_with("values is required"));
    assert_eq!(db(&app, "get-single-row", p, json!({})).await, (400, json!({"errors": ["rowId is required: the row's uniqueId (an integer)"]})));
    assert_eq!(db(&app, "delete-row", p, json!({"rowId": "x"})).await.0, 400);
    assert_eq!(db(&app, "get-single-row", p, json!({"tableId": p + 1, "rowId": 1})).await, (400, json!({"errors": [format!("tableId {} does not match resourceId {p}", p + 1)]})));

    // resourceId: required, and a table of the caller's project.
    let (status, headers, body) = call(&app, &app.key, "/clients/autessadb/get-data", json!({"tableId": p})).await;
    assert_eq!(status, 400);
    assert!(errors(&body)[0].starts_with("resourceId is required"), "{body}");
    assert_limit_headers(&headers, "no resourceId");
    assert_eq!(db(&app, "get-data", 999_999, json!({})).await, (404, json!({"errors": ["Resource with ID 999999 not found"]})));
    let agent: Value = app.post("/v1/agents", json!({"name": "A", "kind": "chat", "instructions": "", "publish": true})).await.json().await.unwrap();
    let agent_number = agent["resource_id"].as_u64().unwrap();
    assert_eq!(db(&app, "get-data", agent_number, json!({})).await, (404, json!({"errors": [format!("Resource with ID {agent_number} not found")]})));
    let stranger = app.other_project_key().await;
    assert_eq!(db_as(&app, &stranger, "get-data", p, json!({})).await, (404, json!({"errors": [format!("Resource with ID {p} not found")]})));
    let (status, headers, body) = call(&app, "wrong-key", &format!("/clients/autessadb/insert?resourceId={p}"), json!({})).await;
    assert_eq!((status, body), (401, json!({"errors": ["Invalid API key"]})));
    assert_limit_headers(&headers, "401");
    let r = app.http.get(app.url(&format!("/clients/autessadb/get-data?resourceId={p}"))).header("Authorization", &app.key).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let (status, body) = db(&app, "drop-table", p, json!({})).await;
    assert_eq!((status, body), (404, json!({"errors": ["No such endpoint"]})));
    app.shutdown().await;
}

#[tokio::test]
async fn autessadb_get_data_pages_at_the_bounds() {
    let app = spawn_app().await;
    let t = table(&app, json!({"name": "numbers", "columns": [{"name": "n", "type": "integer", "required": true}, {"name": "note", "type": "long_text", "vectorized": false}]})).await;
    let rows: Vec<Value> = (1..=12).map(|n| json!({"n": n})).collect();
    assert_eq!(db(&app, "insert", t, json!({"rows": rows})).await.0, 200);
    let page = |current: u64, per: u64, ascending: bool| {
        let app = &app;
        async move { db(app, "get-data", t, json!({"tableId": t, "pagination": {"currentPage": current, "totalRecordsPerPage": per, "ascending": ascending}})).await }
    };
    let (status, body) = page(0, 10, true).await;
    assert_eq!((status, body["totalRecords"].clone(), body["errors"].clone()), (200, json!(12), json!([])), "{body}");
    assert_eq!(column(&body, "n"), (1..=10).map(|n| json!(n)).collect::<Vec<_>>());
    assert_eq!(
        body["tableSchema"],
        json!({"tableId": t, "tableName": "numbers", "description": "", "columns": [
            {"columnName": "uniqueId", "columnType": "UNIQUE_ID", "system": true, "required": true, "vectorized": false},
            {"columnName": "createdAt", "columnType": "TIMESTAMP", "system": true, "required": true, "vectorized": false},
            {"columnName": "lastUpdated", "columnType": "TIMESTAMP", "system": true, "required": true, "vectorized": false},
            {"columnName": "n", "columnType": "INTEGER", "system": false, "required": true, "vectorized": false},
            {"columnName": "note", "columnType": "LONG_TEXT", "system": false, "required": false, "vectorized": false}]})
    );
    assert_eq!(column(&page(1, 10, true).await.1, "n"), vec![json!(11), json!(12)]);
    assert_eq!(column(&page(0, 50, true).await.1, "n").len(), 12);
    assert_eq!(column(&page(0, 10, false).await.1, "uniqueId")[0], 12);
    assert_eq!(page(0, 9, true).await, (400, json!({"errors": ["pagination.totalRecordsPerPage is 10 to 50, got 9"]})));
    assert_eq!(page(0, 51, true).await, (400, json!({"errors": ["pagination.totalRecordsPerPage is 10 to 50, got 51"]})));
    let (status, body) = db(&app, "get-data", t, json!({})).await;
    assert_eq!((status, column(&body, "n").len()), (200, 12), "no pagination: page 0 of 50");
    app.shutdown().await;
}

#[tokio::test]
async fn autessadb_query_filters_aggregates_and_joins() {
    let app = spawn_app().await;
    let p = products(&app).await;
    let query = |body: Value| {
        let app = &app;
        async move {
            let (status, body) = db(app, "query", p, body).await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };

    // (fruit AND price >= 1) OR (vegetable AND no stock): Apple, Fig; Eggplant.
    let nested = json!({"operand": "OR", "groups": [
        {"operand": "AND", "statements": [statement("EQUALS", "category", json!("fruit")), statement("GREATER_THAN_OR_EQUALS", "price", json!(1))]},
        {"operand": "AND", "statements": [statement("EQUALS", "category", json!("vegetable")), statement("IS_NULL", "stock", Value::Null)]},
    ]});
    let body = query(json!({"tableId": p, "filters": nested})).await;
    assert_eq!((ids(&body), body["totalRecords"].clone(), body["errors"].clone()), (vec![1, 5, 6], json!(3), json!([])));
    assert!(body["table"][0]["createdAt"].is_string(), "rows carry the system columns: {body}");
    let one = |s: Value| json!({"operand": "AND", "groups": [{"operand": "AND", "statements": [s]}]});
    assert_eq!(ids(&query(json!({"filters": one(statement("LIKE", "name", json!("%an%")))})).await), vec![2, 5]);
    assert_eq!(ids(&query(json!({"filters": one(statement("LIKE", "name", json!("c%")))})).await), vec![3]);
    assert_eq!(ids(&query(json!({"filters": one(statement("IN", "uniqueId", json!([1, 3, 99])))})).await), vec![1, 3]);
    assert_eq!(ids(&query(json!({"filters": one(statement("NOT_EQUALS", "category", json!("fruit")))})).await), vec![3, 4, 5]);
    assert_eq!(ids(&query(json!({"filters": one(statement("IS_NOT_NULL", "stock", Value::Null))})).await), vec![1, 2, 3, 4, 6]);
    assert_eq!(ids(&query(json!({"filters": one(statement("LESS_THAN", "stock", json!("12")))})).await), vec![2, 6], "a number given as text");
    assert_eq!(ids(&query(json!({"filters": one(statement("EQUALS", "active", json!(false)))})).await), vec![4, 6]);

    // Selected columns, aliases, page and order.
    let body = query(json!({
        "selectedColumns": [{"columnName": "name", "columnAlias": "product"}, {"columnName": "uniqueId"}],
        "pagination": {"currentPage": 0, "totalRecordsPerPage": 10, "ascending": false}})).await;
    assert_eq!(body["table"][0], json!({"product": "Fig", "uniqueId": 6}));
    assert_eq!(body["totalRecords"], 6);

    // Aggregates: COUNT, SUM; beside plain columns, grouped by them.
    let body = query(json!({"selectedColumns": [{"columnName": "*", "functions": ["COUNT"], "columnAlias": "n"}], "filters": one(statement("EQUALS", "category", json!("fruit")))})).await;
    assert_eq!(body["table"], json!([{"n": 3}]));
    let body = query(json!({"selectedColumns": [{"columnName": "stock", "functions": ["SUM"]}, {"columnName": "price", "functions": ["MAX"]}], "filters": one(statement("EQUALS", "category", json!("fruit")))})).await;
    assert_eq!(body["table"], json!([{"SUM(stock)": 55, "MAX(price)": 4.0}]));
    let body = query(json!({"selectedColumns": [{"columnName": "category"}, {"columnName": "uniqueId", "functions": ["COUNT"], "columnAlias": "n"}]})).await;
    let mut groups: Vec<(String, i64)> = body["table"].as_array().unwrap().iter().map(|r| (r["category"].as_str().unwrap().to_owned(), r["n"].as_i64().unwrap())).collect();
    groups.sort();
    assert_eq!(groups, vec![("bakery".into(), 1), ("fruit".into(), 3), ("vegetable".into(), 2)]);

    // Refusals name the field as sent.
    let (status, body) = db(&app, "query", p, json!({"filters": one(statement("BETWEEN", "price", json!(1)))})).await;
    assert_eq!(status, 400);
    assert!(errors(&body)[0].starts_with("filters.groups[0].statements[0].operator: unknown operator `BETWEEN`"), "{body}");
    let (status, body) = db(&app, "query", p, json!({"filters": one(statement("EQUALS", "nope", json!(1)))})).await;
    assert_eq!((status, body), (400, json!({"errors": ["filters.groups[0].statements[0].column: the table `products` has no column `nope`"]})));
    let (status, body) = db(&app, "query", p, json!({"filters": one(statement("LIKE", "price", json!("1%")))})).await;
    assert_eq!((status, errors(&body)[0].starts_with("filters.groups[0].statements[0].operator: like compares text")), (400, true), "{body}");
    let (status, body) = db(&app, "query", p, json!({"selectedColumns": [{"columnName": "name", "functions": ["LENGTH"]}]})).await;
    assert_eq!((status, body), (400, json!({"errors": ["selectedColumns[0].functions: `LENGTH` is not supported: COUNT, SUM, MIN, MAX or AVG"]})));

    // Joins: a LEFT self-join with aliases.
    let e = table(&app, json!({"name": "employees", "columns": [{"name": "name", "type": "string"}, {"name": "manager_id", "type": "integer"}]})).await;
    let staff = json!([{"name": "Ada"}, {"name": "Bob", "manager_id": 1}, {"name": "Cy", "manager_id": 1}, {"name": "Dee", "manager_id": 2}]);
    assert_eq!(db(&app, "insert", e, json!({"rows": staff})).await.0, 200);
    let self_join = |join_type: &str, join_filters: Value| {
        json!({
            "tableId": e,
            "tableAlias": "e",
            "selectedColumns": [
                {"tableId": e, "tableAlias": "e", "columnName": "name", "columnAlias": "employee", "functions": []},
                {"tableId": e, "tableAlias": "m", "columnName": "name", "columnAlias": "manager", "functions": []}],
            "joinStatements": [{"joinType": join_type, "joinTableAlias": "m", "mainTableColumn": "manager_id", "joinTableId": e, "joinTableColumn": "uniqueId", "joinFilters": join_filters}],
        })
    };
    let (status, body) = db(&app, "join-query", e, self_join("LEFT", json!([]))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["table"],
        json!([{"employee": "Ada", "manager": null}, {"employee": "Bob", "manager": "Ada"}, {"employee": "Cy", "manager": "Ada"}, {"employee": "Dee", "manager": "Bob"}])
    );
    assert_eq!(body["totalRecords"], 4);
    let (_, body) = db(&app, "join-query", e, self_join("INNER", json!([]))).await;
    assert_eq!(column(&body, "employee"), vec![json!("Bob"), json!("Cy"), json!("Dee")]);
    // joinFilters (on the joined table unless told otherwise) narrow the rows.
    let (_, body) = db(&app, "join-query", e, self_join("INNER", json!([statement("EQUALS", "name", json!("Ada"))]))).await;
    assert_eq!(column(&body, "employee"), vec![json!("Bob"), json!("Cy")]);
    // Without selectedColumns every column is there, named alias.column.
    let mut all = self_join("LEFT", json!([]));
    all.as_object_mut().unwrap().remove("selectedColumns");
    let (_, body) = db(&app, "join-query", e, all).await;
    assert_eq!((body["table"][1]["e.name"].clone(), body["table"][1]["m.name"].clone(), body["table"][1]["m.uniqueId"].clone()), (json!("Bob"), json!("Ada"), json!(1)), "{body}");
    let (status, body) = db(&app, "join-query", e, self_join("RIGHT", json!([]))).await;
    assert_eq!((status, body), (400, json!({"errors": ["joinStatements[0].joinType: RIGHT joins are not supported: INNER or LEFT"]})));
    let mut no_alias = self_join("LEFT", json!([]));
    no_alias["joinStatements"][0]["joinTableAlias"] = json!("e");
    let (status, body) = db(&app, "join-query", e, no_alias).await;
    assert_eq!(status, 400);
    assert!(errors(&body)[0].starts_with("joinStatements[0].joinTableAlias: "), "{body}");
    let mut missing = self_join("LEFT", json!([]));
    missing["joinStatements"][0]["joinTableId"] = json!(999_999);
    assert_eq!(db(&app, "join-query", e, missing).await, (400, json!({"errors": ["joinStatements[0].joinTableId: no table 999999 in this project"]})));
    let (status, body) = db(&app, "query", e, self_join("LEFT", json!([]))).await;
    assert_eq!(status, 400, "query takes no joins: {body}");
    app.shutdown().await;
}

#[tokio::test]
async fn autessadb_batches_report_records_impacted() {
    let app = spawn_app().await;
    let p = products(&app).await;
    let fruit = json!({"operand": "AND", "groups": [{"operand": "AND", "statements": [statement("EQUALS", "category", json!("fruit"))]}]});
    assert_eq!(db(&app, "batch-update", p, json!({"filters": fruit, "values": {"active": false}})).await, (200, json!({"recordsImpacted": 3, "errors": []})));
    let (_, body) = db(&app, "query", p, json!({"filters": {"groups": [{"statements": [statement("EQUALS", "active", json!(false))]}]}})).await;
    assert_eq!(ids(&body), vec![1, 2, 4, 6]);
    let rows = json!([{"rowId": 1, "values": {"stock": 1}}, {"rowId": "2", "values": {"stock": {"columnType": "INTEGER", "value": 2}}}, {"rowId": 99, "values": {"stock": 3}}]);
    assert_eq!(db(&app, "batch-update", p, json!({"rows": rows})).await, (200, json!({"recordsImpacted": 2, "errors": []})));
    assert_eq!(db(&app, "get-single-row", p, json!({"rowId": 2})).await.1["row"]["stock"], 2);
    let (status, body) = db(&app, "batch-update", p, json!({"filters": {"operand": "AND", "groups": []}, "values": {"active": true}})).await;
    assert_eq!(status, 400, "an empty filter changes nothing: {body}");
    let (status, body) = db(&app, "batch-update", p, json!({"rows": [{"rowId": 1, "values": {"stock": "many"}}]})).await;
    assert_eq!((status, body), (400, json!({"errors": ["rows[0].values.stock: `many` is not an integer"]})));

    assert_eq!(db(&app, "batch-delete", p, json!({"rowIds": [1, 2, 99]})).await, (200, json!({"recordsImpacted": 2, "errors": []})));
    let pricey = json!({"groups": [{"statements": [statement("GREATER_THAN", "price", json!(2.9))]}]});
    assert_eq!(db(&app, "batch-delete", p, json!({"filters": pricey})).await, (200, json!({"recordsImpacted": 2, "errors": []})));
    assert_eq!(db(&app, "get-data", p, json!({})).await.1["totalRecords"], 2);
    assert_eq!(db(&app, "batch-delete", p, json!({})).await.0, 400);
    assert_eq!(db(&app, "batch-delete", p, json!({"rowIds": ["x"]})).await, (400, json!({"errors": ["rowIds[0] must be a uniqueId (an integer), got \"x\""]})));
    app.shutdown().await;
}

#[tokio::test]
async fn autessadb_permissions_per_key() {
    let app = spawn_app().await;
    let p = products(&app).await;
    let (reader, reader_id) = key_with_id(&app).await;
    let (writer, writer_id) = key_with_id(&app).await;
    grant(&app, p, &reader_id, json!(["READ"])).await;
    grant(&app, p, &writer_id, json!(["READ", "WRITE"])).await;
    let denied = |permission: &str| json!({"errors": [format!("Permission denied: {permission} access required")]});

    // READ: reads only.
    for (endpoint, body) in [
        ("get-data", json!({})),
        ("get-single-row", json!({"rowId": 1})),
        ("query", json!({})),
        ("join-query", json!({})),
    ] {
        assert_eq!(db_as(&app, &reader, endpoint, p, body).await.0, 200, "{endpoint}");
    }
    assert_eq!(db_as(&app, &reader, "insert", p, json!({"values": {"name": "x"}})).await, (403, denied("WRITE")));
    for (endpoint, body) in [
        ("update", json!({"rowId": 1, "values": {"stock": 1}})),
        ("batch-update", json!({"rows": [{"rowId": 1, "values": {"stock": 1}}]})),
        ("generate-upload-link", json!({"fileType": "CSV", "fileName": "x.csv"})),
        ("index-record", json!({"rowId": 1})),
        ("batch-insert", json!({"tempPath": "x"})),
    ] {
        assert_eq!(db_as(&app, &reader, endpoint, p, body).await, (403, denied("WRITE")), "{endpoint}");
    }
    assert_eq!(db_as(&app, &reader, "delete-row", p, json!({"rowId": 1})).await, (403, denied("DELETE")));

    // READ and WRITE: no deletes.
    assert_eq!(db_as(&app, &writer, "insert", p, json!({"values": {"name": "x"}})).await.0, 200);
    assert_eq!(db_as(&app, &writer, "delete-row", p, json!({"rowId": 7})).await, (403, denied("DELETE")));
    assert_eq!(db_as(&app, &writer, "batch-delete", p, json!({"rowIds": [7]})).await, (403, denied("DELETE")));

    // A join reads the joined table too.
    let o = table(&app, json!({"name": "orders", "columns": [{"name": "product_id", "type": "integer"}]})).await;
    grant(&app, o, &reader_id, json!(["WRITE"])).await;
    let join = json!({"joinStatements": [{"joinType": "INNER", "joinTableAlias": "o", "mainTableColumn": "uniqueId", "joinTableId": o, "joinTableColumn": "product_id"}]});
    assert_eq!(db_as(&app, &reader, "join-query", p, join.clone()).await, (403, denied("READ")));
    assert_eq!(db_as(&app, &reader, "get-data", o, json!({})).await, (403, denied("READ")));
    // No grant: everything.
    assert_eq!(db(&app, "join-query", p, join).await.0, 200);
    assert_eq!(db(&app, "delete-row", p, json!({"rowId": 7})).await.0, 200);
    app.shutdown().await;
}

/// PUTs `csv` to an upload URL (no key).
async fn put_file(app: &TestApp, url: &str, csv: &'static str) -> (u16, Value) {
    let r = app.http.put(url).header("content-type", "text/csv").body(csv).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn autessadb_upload_link_then_batch_insert() {
    let app = spawn_app().await;
    let p = products(&app).await;
    let (status, link) = db(&app, "generate-upload-link", p, json!({"tableId": p, "fileType": "CSV", "fileName": "more.csv"})).await;
    assert_eq!(status, 200, "{link}");
    let (url, temp) = (link["uploadUrl"].as_str().unwrap().to_owned(), link["tempPath"].as_str().unwrap().to_owned());
    assert!(url.starts_with("http://") && url.ends_with(&format!("/clients/autessadb/uploads/{temp}")), "{link}");
    assert_eq!(link["errors"], json!([]));
    assert_eq!(db(&app, "generate-upload-link", p, json!({"fileType": "PDF"})).await.0, 400);

    // Nothing uploaded yet: refused, the link still works.
    let (status, body) = db(&app, "batch-insert", p, json!({"tableId": p, "fileDelimiter": "COMMA", "tempPath": temp})).await;
    assert_eq!(status, 409, "{body}");

    // A file with a bad line: nothing is imported, the line is named.
    const BAD: &str = "name,price,stock\nKiwi,1.5,3\nLime,abc,4\nMango,2,\n";
    let (status, body) = put_file(&app, &url, BAD).await;
    assert_eq!((status, body), (200, json!({"bytes": BAD.len(), "errors": []})));
    assert_eq!(put_file(&app, &url, "name\nX\n").await.0, 409, "a link takes one file");
    let (status, body) = db(&app, "batch-insert", p, json!({"tableId": p, "fileDelimiter": "COMMA", "tempPath": temp})).await;
    assert_eq!((status, body), (400, json!({"errors": ["line 3: column price: `abc` is not a number"]})));
    assert_eq!(db(&app, "get-data", p, json!({})).await.1["totalRecords"], 6, "nothing half-imported");
    assert_eq!(db(&app, "batch-insert", p, json!({"tempPath": temp})).await.0, 404, "the upload is used up");

    // A good file (semicolons) through a new link.
    let (_, link) = db(&app, "generate-upload-link", p, json!({"fileType": "CSV", "fileName": "fixed.csv"})).await;
    let url = link["uploadUrl"].as_str().unwrap().to_owned();
    assert_eq!(put_file(&app, &url, "name;price;stock\nKiwi;1.5;3\nLime;0.4;4\n").await.0, 200);
    let (status, body) = db(&app, "batch-insert", p, json!({"fileDelimiter": "SEMICOLON", "tempPath": url})).await;
    assert_eq!((status, body), (200, json!({"recordsImpacted": 2, "errors": []})));
    let (_, body) = db(&app, "get-single-row", p, json!({"rowId": 8})).await;
    assert_eq!((body["row"]["name"].clone(), body["row"]["price"].clone()), (json!("Lime"), json!(0.4)));

    // Another table's link is not this table's.
    let o = table(&app, json!({"name": "other", "columns": [{"name": "name", "type": "string"}]})).await;
    let (_, link) = db(&app, "generate-upload-link", o, json!({"fileType": "CSV"})).await;
    assert_eq!(put_file(&app, link["uploadUrl"].as_str().unwrap(), "name\nX\n").await.0, 200);
    assert_eq!(db(&app, "batch-insert", p, json!({"tempPath": link["tempPath"]})).await.0, 404);
    assert_eq!(db(&app, "batch-insert", o, json!({"tempPath": link["tempPath"], "fileDelimiter": "COLON"})).await.0, 400);
    assert_eq!(db(&app, "batch-insert", o, json!({"tempPath": link["tempPath"]})).await, (200, json!({"recordsImpacted": 1, "errors": []})));
    assert_eq!(put_file(&app, &format!("{}/clients/autessadb/uploads/{}", app.url(""), "0".repeat(64)), "name\n").await.0, 404);
    app.shutdown().await;
}

#[tokio::test]
async fn autessadb_index_record_and_search() {
    let app = spawn_app().await;
    let d = table(&app, json!({"name": "docs", "columns": [{"name": "title", "type": "string"}, {"name": "body", "type": "long_text", "vectorized": true}]})).await;
    let (status, body) = db(&app, "insert", d, json!({"values": {"title": "Fruit", "body": "sweet yellow bananas"}})).await;
    assert_eq!((status, body["computationStatus"].clone(), body["newRow"]["computationStatus"].clone()), (200, json!("COMPUTING"), json!("COMPUTING")), "{body}");
    db(&app, "insert", d, json!({"values": {"title": "Bread", "body": "crusty sweet loaf"}})).await;

    // The vectorizer reports the row embedded: DONE; index-record asks again: COMPUTING.
    let engine = &app.server.as_ref().unwrap().engine;
    let project = app.store().project_by_name("default").await.unwrap().unwrap().id;
    let docs = engine.find_table(project, &d.to_string()).await.unwrap();
    engine.set_vector_status(&docs, &[1], "DONE").await.unwrap();
    assert_eq!(db(&app, "get-single-row", d, json!({"rowId": 1})).await.1["row"]["computationStatus"], "DONE");
    assert_eq!(db(&app, "index-record", d, json!({"tableId": d, "rowId": 1})).await, (200, json!({"computationStatus": "COMPUTING", "errors": []})));
    assert_eq!(db(&app, "get-single-row", d, json!({"rowId": 1})).await.1["row"]["computationStatus"], "COMPUTING");
    assert_eq!(db(&app, "index-record", d, json!({"rowId": 9})).await, (404, json!({"errors": ["Row 9 not found"]})));
    let p = products(&app).await;
    assert_eq!(db(&app, "index-record", p, json!({"rowId": 1})).await, (200, json!({"computationStatus": "DONE", "errors": []})), "nothing to compute");
    assert_eq!(db(&app, "index-record", p, json!({"rowId": 99})).await.0, 404);

    // Semantic search needs an embedding model: without one, the engine's refusal is what the
    // client reads (with one: `semantic::paraphrases_are_found_first_with_the_local_model`).
    let (status, body) = db(&app, "search", d, json!({"tableId": d, "columnName": "body", "query": "yellow fruit", "limit": 1})).await;
    assert_eq!(status, 400, "{body}");
    assert!(errors(&body)[0].contains("embedding model"), "{body}");
    // The rows and scores of a search, through the engine's full-text mode.
    let (status, body) = db(&app, "search", d, json!({"columnName": "body", "query": "sweet", "limit": 5, "mode": "fulltext"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), vec![1, 2]);
    assert!(body["table"][0]["score"].as_f64().unwrap() > 0.0 && body["table"][0]["title"].is_string(), "{body}");
    let (_, body) = db(&app, "search", d, json!({"columnName": "body", "query": "bananas", "mode": "fulltext"})).await;
    assert_eq!(column(&body, "title"), vec![json!("Fruit")]);
    assert_eq!(db(&app, "search", d, json!({"columnName": "body"})).await, (400, json!({"errors": ["query is required: the text to search for"]})));
    app.shutdown().await;
}
