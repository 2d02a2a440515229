//! Tables: every operation over HTTP, filters, sorts, aggregates and joins checked against
//! hand-computed answers on a small data set (8 products, 5 orders), CSV imports with bad
//! lines, upload links, per-key permissions, limits at N and N+1, tenancy and restarts.

use agentd::keys::{self, KeyRequest};
use serde_json::{Value, json};

use crate::support::*;

/// 8 products: id, name, category, price, stock, active, added, notes.
const PRODUCTS: [(&str, Option<&str>, f64, Option<i64>, bool, &str, Option<&str>); 8] = [
    ("Apple", Some("fruit"), 1.2, Some(50), true, "2026-01-01", Some("crisp red apple")),
    ("Banana", Some("fruit"), 0.5, Some(0), true, "2026-01-02", Some("yellow and sweet")),
    ("Carrot", Some("vegetable"), 0.8, Some(30), true, "2026-01-03", None),
    ("Donut", Some("bakery"), 2.5, Some(12), false, "2026-01-04", Some("sweet glazed ring")),
    ("Eggplant", Some("vegetable"), 3.0, None, true, "2026-01-05", Some("purple")),
    ("Fig", Some("fruit"), 4.0, Some(5), false, "2026-01-06", None),
    ("Garlic", Some("vegetable"), 0.3, Some(100), true, "2026-01-07", Some("strong smell")),
    ("Honey", None, 6.0, Some(7), true, "2026-01-08", Some("sweet golden syrup")),
];

/// 5 orders: product_id, quantity, customer (product 99 does not exist).
const ORDERS: [(i64, i64, &str); 5] = [(1, 3, "ann"), (1, 2, "bob"), (4, 1, "ann"), (7, 10, "cat"), (99, 1, "dan")];

async fn send(app: &TestApp, key: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app.http.request(method, app.url(path)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    send(app, &app.key, reqwest::Method::POST, path, Some(body)).await
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    send(app, &app.key, reqwest::Method::GET, path, None).await
}

async fn create_table(app: &TestApp, body: Value) -> Value {
    let (status, table) = post(app, "/v1/tables", body).await;
    assert_eq!(status, 201, "{table}");
    table
}

/// The products and orders tables, filled; their ids.
async fn shop(app: &TestApp) -> (String, String) {
    let products = create_table(
        app,
        json!({"name": "products", "columns": [
            {"name": "name", "type": "string", "required": true},
            {"name": "category", "type": "string"},
            {"name": "price", "type": "float"},
            {"name": "stock", "type": "integer"},
            {"name": "active", "type": "boolean"},
            {"name": "added", "type": "timestamp"},
            {"name": "notes", "type": "long_text"},
        ]}),
    )
    .await;
    let rows: Vec<Value> = PRODUCTS
        .iter()
        .map(|(name, category, price, stock, active, added, notes)| {
            json!({"name": name, "category": category, "price": price, "stock": stock, "active": active, "added": added, "notes": notes})
        })
        .collect();
    let pid = products["id"].as_str().unwrap().to_owned();
    let (status, body) = post(app, &format!("/v1/tables/{pid}/rows"), json!({"rows": rows})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["ids"], json!([1, 2, 3, 4, 5, 6, 7, 8]));

    let orders = create_table(
        app,
        json!({"name": "orders", "columns": [
            {"name": "product_id", "type": "integer"}, {"name": "quantity", "type": "integer"}, {"name": "customer", "type": "string"}]}),
    )
    .await;
    let oid = orders["id"].as_str().unwrap().to_owned();
    let rows: Vec<Value> = ORDERS.iter().map(|(p, q, c)| json!({"product_id": p, "quantity": q, "customer": c})).collect();
    let (status, body) = post(app, &format!("/v1/tables/{oid}/rows"), json!({"rows": rows})).await;
    assert_eq!(status, 201, "{body}");
    (pid, oid)
}

async fn query(app: &TestApp, table: &str, body: Value) -> Value {
    let (status, page) = post(app, &format!("/v1/tables/{table}/query"), body).await;
    assert_eq!(status, 200, "{page}");
    page
}

fn column(page: &Value, key: &str) -> Vec<Value> {
    page["data"].as_array().unwrap().iter().map(|row| row[key].clone()).collect()
}

async fn ids_where(app: &TestApp, table: &str, filter: Value) -> Vec<i64> {
    let page = query(app, table, json!({"filter": filter, "per_page": 100})).await;
    column(&page, "id").iter().map(|v| v.as_i64().unwrap()).collect()
}

#[tokio::test]
async fn tables_crud_rows_and_tenancy() {
    let app = spawn_app().await;
    let table = create_table(&app, json!({"name": "notes", "description": "jottings", "columns": [{"name": "title", "type": "string", "required": true}, {"name": "n", "type": "integer"}]})).await;
    let id = table["id"].as_str().unwrap();
    assert!(table["resource_id"].as_u64().unwrap() > 0);
    assert_eq!(table["row_count"], 0);
    assert_eq!(table["columns"][0], json!({"name": "title", "type": "string", "vectorized": false, "required": true}));
    let (status, e) = post(&app, "/v1/tables", json!({"name": "notes", "columns": []})).await;
    assert_eq!(status, 409, "{e}");

    let (status, row) = post(&app, &format!("/v1/tables/{id}/rows"), json!({"values": {"title": "first", "n": 1}})).await;
    assert_eq!(status, 201, "{row}");
    assert_eq!(row["id"], 1);
    assert_eq!(row["title"], "first");
    assert_eq!(row["vector_status"], Value::Null);
    assert!(row["created_at"].as_str().unwrap().ends_with('Z'));

    // By id, resource number and name alike.
    let number = table["resource_id"].as_u64().unwrap();
    for path in [format!("/v1/tables/{id}/rows/1"), format!("/v1/tables/{number}/rows/1"), "/v1/tables/notes/rows/1".to_owned()] {
        let (status, got) = get(&app, &path).await;
        assert_eq!((status, got["title"].clone()), (200, json!("first")), "{path}");
    }
    let (status, row) = send(&app, &app.key, reqwest::Method::PATCH, &format!("/v1/tables/{id}/rows/1"), Some(json!({"values": {"n": 2}}))).await;
    assert_eq!((status, row["n"].clone(), row["title"].clone()), (200, json!(2), json!("first")), "{row}");
    let (status, e) = send(&app, &app.key, reqwest::Method::PATCH, &format!("/v1/tables/{id}/rows/1"), Some(json!({"values": {"title": null}}))).await;
    assert_eq!((status, e["error"]["field"].clone()), (400, json!("values.title")), "{e}");
    let (status, e) = post(&app, &format!("/v1/tables/{id}/rows"), json!({"values": {"title": "x", "n": "two"}})).await;
    assert_eq!((status, e["error"]["field"].clone()), (400, json!("values.n")), "{e}");
    let (status, e) = post(&app, &format!("/v1/tables/{id}/rows"), json!({"values": {"title": "x", "price": 1}})).await;
    assert_eq!((status, e["error"]["field"].clone()), (400, json!("values.price")), "{e}");

    // Rename and add a column.
    let (status, t) = send(&app, &app.key, reqwest::Method::PATCH, &format!("/v1/tables/{id}"), Some(json!({"name": "jottings", "add_columns": [{"name": "body", "type": "long_text"}]}))).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!((t["name"].clone(), t["columns"].as_array().unwrap().len(), t["row_count"].clone()), (json!("jottings"), 3, json!(1)));
    let (status, row) = post(&app, &format!("/v1/tables/{id}/rows"), json!({"values": {"title": "second", "body": "long words here"}})).await;
    assert_eq!((status, row["body"].clone()), (201, json!("long words here")));
    let (_, list) = get(&app, "/v1/tables").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // Another project sees nothing.
    let other = app.other_project_key().await;
    let (status, _) = send(&app, &other, reqwest::Method::GET, &format!("/v1/tables/{id}"), None).await;
    assert_eq!(status, 404);
    let (status, _) = send(&app, &other, reqwest::Method::GET, &format!("/v1/tables/{id}/rows/1"), None).await;
    assert_eq!(status, 404);
    let (_, list) = send(&app, &other, reqwest::Method::GET, "/v1/tables", None).await;
    assert_eq!(list["data"], json!([]));

    let (status, _) = send(&app, &app.key, reqwest::Method::DELETE, &format!("/v1/tables/{id}/rows/1"), None).await;
    assert_eq!(status, 204);
    let (status, e) = get(&app, &format!("/v1/tables/{id}/rows/1")).await;
    assert_eq!((status, e["error"]["message"].clone()), (404, json!("row not found")));
    let (status, _) = send(&app, &app.key, reqwest::Method::DELETE, &format!("/v1/tables/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, e) = get(&app, &format!("/v1/tables/{id}")).await;
    assert_eq!((status, e["error"]["message"].clone()), (404, json!("table not found")));
}

#[tokio::test]
async fn tables_filters_match_hand_computed_answers() {
    let app = spawn_app().await;
    let (p, _) = shop(&app).await;
    let cases = [
        (json!({"and": [{"column": "category", "op": "eq", "value": "fruit"}, {"column": "price", "op": "gt", "value": 1}]}), vec![1, 6]),
        (
            json!({"or": [{"column": "category", "op": "eq", "value": "bakery"},
                          {"and": [{"column": "category", "op": "eq", "value": "vegetable"}, {"column": "stock", "op": "lt", "value": 50}]}]}),
            vec![3, 4],
        ),
        // ne is null-safe: Honey (no category) is "not fruit".
        (json!({"column": "category", "op": "ne", "value": "fruit"}), vec![3, 4, 5, 7, 8]),
        (json!({"column": "price", "op": "lte", "value": 0.8}), vec![2, 3, 7]),
        (json!({"column": "stock", "op": "gte", "value": 30}), vec![1, 3, 7]),
        (json!({"column": "name", "op": "like", "value": "%an%"}), vec![2, 5]),
        (json!({"column": "name", "op": "like", "value": "%AN%"}), vec![2, 5]),
        (json!({"column": "name", "op": "like", "value": "_ig"}), vec![6]),
        (json!({"column": "name", "op": "in", "value": ["Fig", "Honey", "Nope"]}), vec![6, 8]),
        (json!({"column": "stock", "op": "is_null"}), vec![5]),
        (json!({"column": "category", "op": "is_null"}), vec![8]),
        (json!({"column": "notes", "op": "is_not_null"}), vec![1, 2, 4, 5, 7, 8]),
        (json!({"column": "active", "op": "eq", "value": false}), vec![4, 6]),
        (json!({"column": "added", "op": "gt", "value": "2026-01-06T00:00:00Z"}), vec![7, 8]),
        (json!({"column": "added", "op": "lt", "value": "2026-01-02"}), vec![1]),
        (json!({"column": "uniqueId", "op": "eq", "value": 3}), vec![3]),
        (json!({"column": "id", "op": "in", "value": [2, 4, 42]}), vec![2, 4]),
        (
            json!({"and": [{"or": [{"column": "category", "op": "eq", "value": "fruit"}, {"column": "category", "op": "is_null"}]},
                           {"column": "active", "op": "eq", "value": true}, {"column": "price", "op": "gte", "value": 1}]}),
            vec![1, 8],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(ids_where(&app, &p, filter.clone()).await, expected, "{filter}");
    }
    // Errors name the field.
    for (filter, field) in [
        (json!({"and": [{"column": "price", "op": "gt", "value": 1}, {"column": "nope", "op": "eq", "value": 1}]}), "filter.and[1].column"),
        (json!({"column": "price", "op": "eq", "value": "cheap"}), "filter.value"),
        (json!({"column": "price", "op": "between", "value": 1}), "filter.op"),
        (json!({"column": "stock", "op": "like", "value": "1%"}), "filter.op"),
        (json!({"column": "name", "op": "in", "value": []}), "filter.value"),
        (json!({"or": [{"column": "name", "op": "eq", "value": null}]}), "filter.or[0].value"),
    ] {
        let (status, e) = post(&app, &format!("/v1/tables/{p}/query"), json!({"filter": filter})).await;
        assert_eq!((status, e["error"]["field"].clone()), (400, json!(field)), "{e}");
    }
}

#[tokio::test]
async fn tables_sort_pages_and_aggregates() {
    let app = spawn_app().await;
    let (p, _) = shop(&app).await;
    let mut seen = Vec::new();
    for page in 0..3 {
        let body = query(&app, &p, json!({"sort": [{"column": "price", "direction": "desc"}], "page": page, "per_page": 3})).await;
        assert_eq!((body["total"].clone(), body["page"].clone(), body["per_page"].clone()), (json!(8), json!(page), json!(3)));
        seen.extend(column(&body, "id"));
    }
    assert_eq!(seen, [8, 6, 5, 4, 1, 3, 2, 7].map(|i| json!(i)).to_vec());
    let (status, rows) = get(&app, &format!("/v1/tables/{p}/rows?sort=name&direction=desc&per_page=2&page=1")).await;
    assert_eq!(status, 200);
    assert_eq!(column(&rows, "name"), vec![json!("Fig"), json!("Eggplant")]);
    let (status, rows) = get(&app, &format!("/v1/tables/{p}/rows?sort=createdAt")).await;
    assert_eq!((status, rows["total"].clone()), (200, json!(8)));

    let body = query(
        &app,
        &p,
        json!({"select": [{"column": "*", "function": "count"}, {"column": "stock", "function": "sum"}, {"column": "price", "function": "min", "alias": "cheapest"},
                          {"column": "price", "function": "max"}, {"column": "price", "function": "avg"}]}),
    )
    .await;
    let row = &body["data"][0];
    assert_eq!((row["count(*)"].clone(), row["sum(stock)"].clone(), row["cheapest"].clone(), row["max(price)"].clone()), (json!(8), json!(204), json!(0.3), json!(6.0)));
    assert!((row["avg(price)"].as_f64().unwrap() - 2.2875).abs() < 1e-9, "{row}");
    assert_eq!(body["total"], 1);

    let body = query(
        &app,
        &p,
        json!({"select": [{"column": "category"}, {"column": "*", "function": "count", "alias": "n"}, {"column": "stock", "function": "sum", "alias": "stock"}],
               "group_by": ["category"], "sort": [{"column": "category"}]}),
    )
    .await;
    assert_eq!(body["total"], 4);
    assert_eq!(
        body["data"],
        json!([{"category": null, "n": 1, "stock": 7}, {"category": "bakery", "n": 1, "stock": 12},
               {"category": "fruit", "n": 3, "stock": 55}, {"category": "vegetable", "n": 3, "stock": 130}])
    );
    let body = query(&app, &p, json!({"select": [{"column": "category"}, {"column": "*", "function": "count", "alias": "n"}], "group_by": ["category"],
                                      "filter": {"column": "category", "op": "is_not_null"}, "sort": [{"column": "n", "direction": "desc"}, {"column": "category"}]})).await;
    assert_eq!(column(&body, "category"), vec![json!("fruit"), json!("vegetable"), json!("bakery")]);
    let (status, e) = post(&app, &format!("/v1/tables/{p}/query"), json!({"select": [{"column": "name"}, {"column": "*", "function": "count"}]})).await;
    assert_eq!((status, e["error"]["field"].clone()), (400, json!("select[0].column")), "{e}");
    let (status, e) = post(&app, &format!("/v1/tables/{p}/query"), json!({"select": [{"column": "name", "function": "sum"}]})).await;
    assert_eq!((status, e["error"]["field"].clone()), (400, json!("select[0].function")), "{e}");
}

#[tokio::test]
async fn tables_joins_inner_left_and_self() {
    let app = spawn_app().await;
    let (_, o) = shop(&app).await;
    let inner = query(
        &app,
        &o,
        json!({"alias": "o", "join": {"table": "products", "alias": "p", "type": "inner", "on": {"left": "o.product_id", "right": "p.id"}},
               "select": [{"column": "o.id"}, {"column": "p.name"}, {"column": "o.quantity"}], "sort": [{"column": "o.id"}]}),
    )
    .await;
    assert_eq!(inner["total"], 4);
    assert_eq!(
        inner["data"],
        json!([{"o.id": 1, "p.name": "Apple", "o.quantity": 3}, {"o.id": 2, "p.name": "Apple", "o.quantity": 2},
               {"o.id": 3, "p.name": "Donut", "o.quantity": 1}, {"o.id": 4, "p.name": "Garlic", "o.quantity": 10}])
    );
    let left = query(&app, &o, json!({"alias": "o", "join": {"table": "products", "alias": "p", "type": "left", "on": {"left": "o.product_id", "right": "p.id"}}})).await;
    assert_eq!(left["total"], 5);
    assert_eq!(column(&left, "p.name"), vec![json!("Apple"), json!("Apple"), json!("Donut"), json!("Garlic"), Value::Null]);
    assert_eq!(column(&left, "o.customer")[4], json!("dan"));
    assert!(left["data"][0].get("p.created_at").is_some());

    // Products with no order: a left join from products, filtered on the missing side.
    let lonely = query(&app, "products", json!({"alias": "p", "join": [{"table": o, "alias": "o", "type": "left", "on": {"left": "p.id", "right": "o.product_id"}}],
                                                "filter": {"column": "o.id", "op": "is_null"}, "select": [{"column": "p.id"}], "sort": [{"column": "p.id"}]})).await;
    assert_eq!(column(&lonely, "p.id"), [2, 3, 5, 6, 8].map(|i| json!(i)).to_vec());
    let with_orders = query(&app, "products", json!({"alias": "p", "join": {"table": "orders", "alias": "o", "type": "left", "on": {"left": "p.id", "right": "o.product_id"}}})).await;
    assert_eq!(with_orders["total"], 9);

    // Filter and aggregate across the join.
    let fruit = query(&app, &o, json!({"alias": "o", "join": {"table": "products", "alias": "p", "on": {"left": "o.product_id", "right": "p.id"}},
                                       "filter": {"column": "p.category", "op": "eq", "value": "fruit"}, "select": [{"column": "o.id"}]})).await;
    assert_eq!(column(&fruit, "o.id"), vec![json!(1), json!(2)]);
    let per_product = query(&app, &o, json!({"alias": "o", "join": {"table": "products", "alias": "p", "on": {"left": "o.product_id", "right": "p.id"}},
                                             "select": [{"column": "p.name", "alias": "product"}, {"column": "o.quantity", "function": "sum", "alias": "quantity"}],
                                             "group_by": ["p.name"], "sort": [{"column": "p.name"}]})).await;
    assert_eq!(per_product["data"], json!([{"product": "Apple", "quantity": 5}, {"product": "Donut", "quantity": 1}, {"product": "Garlic", "quantity": 10}]));

    // A self-join: Apple's category mates.
    let mates = query(&app, "products", json!({"alias": "a", "join": {"table": "products", "alias": "b", "on": {"left": "a.category", "right": "b.category"}},
                                               "filter": {"column": "a.name", "op": "eq", "value": "Apple"}, "select": [{"column": "b.name"}], "sort": [{"column": "b.id"}]})).await;
    assert_eq!(column(&mates, "b.name"), vec![json!("Apple"), json!("Banana"), json!("Fig")]);

    // Errors name the field.
    for (body, field) in [
        (json!({"join": {"table": "products", "alias": "orders", "on": {"left": "orders.product_id", "right": "orders.id"}}}), "join[0].alias"),
        (json!({"join": {"table": "nope", "alias": "p", "on": {"left": "orders.product_id", "right": "p.id"}}}), "join[0].table"),
        (json!({"join": {"table": "products", "alias": "p", "on": {"left": "x.product_id", "right": "p.id"}}}), "join[0].on.left"),
        (json!({"join": {"table": "products", "alias": "p", "on": {"left": "orders.product_id", "right": "p.id"}}, "filter": {"column": "name", "op": "is_null"}}), "filter.column"),
        (json!({"join": {"table": "products", "alias": "p", "type": "cross", "on": {"left": "orders.product_id", "right": "p.id"}}}), "join[0].type"),
    ] {
        let (status, e) = post(&app, &format!("/v1/tables/{o}/query"), body).await;
        assert_eq!((status, e["error"]["field"].clone()), (400, json!(field)), "{e}");
    }
}

#[tokio::test]
async fn tables_batches_are_all_or_nothing() {
    let app = spawn_app().await;
    let (p, o) = shop(&app).await;
    let rows: Vec<Value> = (0..5).map(|i| json!({"product_id": i, "quantity": if i == 3 { json!("lots") } else { json!(i) }})).collect();
    let (status, e) = post(&app, &format!("/v1/tables/{o}/rows"), json!({"rows": rows})).await;
    assert_eq!((status, e["error"]["field"].clone()), (400, json!("rows[3].quantity")), "{e}");
    assert_eq!(get(&app, &format!("/v1/tables/{o}")).await.1["row_count"], 5);

    let (status, body) = post(&app, &format!("/v1/tables/{p}/rows/batch-update"), json!({"filter": {"column": "category", "op": "eq", "value": "fruit"}, "values": {"active": false}})).await;
    assert_eq!((status, body["updated"].clone()), (200, json!(3)), "{body}");
    assert_eq!(ids_where(&app, &p, json!({"column": "active", "op": "eq", "value": false})).await, vec![1, 2, 4, 6]);
    let (status, body) = post(&app, &format!("/v1/tables/{p}/rows/batch-update"), json!({"rows": [{"id": 1, "values": {"stock": 1}}, {"id": 2, "values": {"stock": 2}}, {"id": 77, "values": {"stock": 3}}]})).await;
    assert_eq!((status, body["updated"].clone()), (200, json!(2)), "{body}");
    let (status, e) = post(&app, &format!("/v1/tables/{p}/rows/batch-update"), json!({"rows": [{"id": 1, "values": {"stock": 5}}, {"id": 2, "values": {"stock": "x"}}]})).await;
    assert_eq!((status, e["error"]["field"].clone()), (400, json!("rows[1].values.stock")));
    assert_eq!(get(&app, &format!("/v1/tables/{p}/rows/1")).await.1["stock"], 1);
    let (status, e) = post(&app, &format!("/v1/tables/{p}/rows/batch-update"), json!({"values": {"stock": 0}})).await;
    assert_eq!(status, 400, "{e}");

    let (status, body) = post(&app, &format!("/v1/tables/{o}/rows/batch-delete"), json!({"ids": [1, 2, 42]})).await;
    assert_eq!((status, body["deleted"].clone()), (200, json!(2)));
    let (status, body) = post(&app, &format!("/v1/tables/{o}/rows/batch-delete"), json!({"filter": {"column": "customer", "op": "eq", "value": "ann"}})).await;
    assert_eq!((status, body["deleted"].clone()), (200, json!(1)));
    let (status, _) = post(&app, &format!("/v1/tables/{o}/rows/batch-delete"), json!({})).await;
    assert_eq!(status, 400);
    let (status, body) = post(&app, &format!("/v1/tables/{o}/rows/batch-delete"), json!({"all": true})).await;
    assert_eq!((status, body["deleted"].clone()), (200, json!(2)));
}

async fn put_csv(app: &TestApp, key: Option<&str>, method: reqwest::Method, path: &str, csv: impl Into<reqwest::Body>) -> (u16, Value) {
    let mut request = app.http.request(method, app.url(path)).header("content-type", "text/csv").body(csv);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn tables_csv_import_reports_lines_and_is_all_or_nothing() {
    let app = spawn_app().await;
    let (p, _) = shop(&app).await;
    let bad = "name,price,stock,active,added,uniqueId\n\
               Kiwi,1.5,3,yes,2026-02-01,\n\
               ,2,1,no,2026-02-02,\n\
               Lime,cheap,1,no,2026-02-03,\n\
               Mango,2.5,1,maybe,2026-02-04,\n\
               \"Nut, mixed\",9,1,true,2026-02-05,\n\
               Olive,1\n";
    let (status, e) = put_csv(&app, Some(&app.key), reqwest::Method::POST, &format!("/v1/tables/{p}/import"), bad).await;
    assert_eq!(status, 400, "{e}");
    let errors = &e["error"]["errors"];
    assert_eq!(errors.as_array().unwrap().len(), 4, "{errors}");
    let lines: Vec<(i64, Value)> = errors.as_array().unwrap().iter().map(|x| (x["line"].as_i64().unwrap(), x["column"].clone())).collect();
    assert_eq!(lines, vec![(3, json!("name")), (4, json!("price")), (5, json!("active")), (7, Value::Null)]);
    assert_eq!(get(&app, &format!("/v1/tables/{p}")).await.1["row_count"], 8);

    let (status, e) = put_csv(&app, Some(&app.key), reqwest::Method::POST, &format!("/v1/tables/{p}/import"), "name,colour\nx,red\n").await;
    assert_eq!((status, e["error"]["errors"][0]["column"].clone()), (400, json!("colour")), "{e}");
    let (status, e) = put_csv(&app, Some(&app.key), reqwest::Method::POST, &format!("/v1/tables/{p}/import"), "price\n1\n").await;
    assert_eq!((status, e["error"]["errors"][0]["column"].clone()), (400, json!("name")), "{e}");

    let good = "name,price,active,added,notes\nKiwi,1.5,yes,2026-02-01,\"green, fuzzy\"\n\"Nut, mixed\",9,true,1767225600000,\n";
    let (status, body) = put_csv(&app, Some(&app.key), reqwest::Method::POST, &format!("/v1/tables/{p}/import"), good).await;
    assert_eq!((status, body["inserted"].clone()), (200, json!(2)), "{body}");
    let kiwi = get(&app, &format!("/v1/tables/{p}/rows/9")).await.1;
    assert_eq!((kiwi["name"].clone(), kiwi["notes"].clone(), kiwi["active"].clone(), kiwi["added"].clone()), (json!("Kiwi"), json!("green, fuzzy"), json!(true), json!("2026-02-01T00:00:00.000Z")));
    assert_eq!(get(&app, &format!("/v1/tables/{p}/rows/10")).await.1["added"], json!("2026-01-01T00:00:00.000Z"));

    let (status, _) = post(&app, &format!("/v1/tables/{p}/import"), json!({"csv": "name\nx"})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn tables_upload_links_work_once_and_expire() {
    let app = spawn_app().await;
    let (p, _) = shop(&app).await;
    let (status, link) = post(&app, &format!("/v1/tables/{p}/upload-links"), json!({})).await;
    assert_eq!(status, 201, "{link}");
    let path = link["upload_path"].as_str().unwrap().to_owned();
    assert!(link["upload_url"].as_str().unwrap().ends_with(&path));
    assert_eq!(path.len(), "/v1/uploads/".len() + 64);

    let (status, body) = put_csv(&app, None, reqwest::Method::PUT, &path, "name\nKiwi\nLime\n").await;
    assert_eq!((status, body["inserted"].clone()), (200, json!(2)), "{body}");
    let (status, _) = put_csv(&app, None, reqwest::Method::PUT, &path, "name\nMango\n").await;
    assert_eq!(status, 404);
    assert_eq!(get(&app, &format!("/v1/tables/{p}")).await.1["row_count"], 10);

    let (_, link) = post(&app, &format!("/v1/tables/{p}/upload-links"), json!({})).await;
    let (_, bad) = post(&app, &format!("/v1/tables/{p}/upload-links"), json!({})).await;
    let (status, e) = put_csv(&app, None, reqwest::Method::PUT, bad["upload_path"].as_str().unwrap(), "name\n\n,\n").await;
    assert_eq!((status, e["error"]["errors"][0]["line"].clone()), (400, json!(3)), "{e}");
    app.clock.advance(agentd_engine::UPLOAD_LINK_TTL + std::time::Duration::from_secs(1));
    let (status, e) = put_csv(&app, None, reqwest::Method::PUT, link["upload_path"].as_str().unwrap(), "name\nMango\n").await;
    assert_eq!(status, 409, "{e}");
    let (status, _) = put_csv(&app, None, reqwest::Method::PUT, "/v1/uploads/not-a-token", "name\nMango\n").await;
    assert_eq!(status, 404);
    assert_eq!(get(&app, &format!("/v1/tables/{p}")).await.1["row_count"], 10);
}

async fn key_with_id(app: &TestApp, project: &str) -> (String, String) {
    let req = KeyRequest { project: project.into(), name: "table key".into(), tier: "unlimited".into(), per_minute: None, per_day: None };
    let (secret, record) = keys::create(app.store().as_ref(), &req).await.expect("key");
    (secret, record.id.to_string())
}

#[tokio::test]
async fn tables_permissions_per_key() {
    let app = spawn_app().await;
    let (p, o) = shop(&app).await;
    let (reader, reader_id) = key_with_id(&app, "default").await;
    let (writer, writer_id) = key_with_id(&app, "default").await;
    let (free, _) = key_with_id(&app, "default").await;
    let (_, foreign_id) = key_with_id(&app, "other").await;

    let put = |key_id: String, perms: Value| {
        let app = &app;
        let p = p.clone();
        async move { send(app, &app.key, reqwest::Method::PUT, &format!("/v1/tables/{p}/permissions/{key_id}"), Some(json!({"permissions": perms}))).await }
    };
    let (status, body) = put(reader_id.clone(), json!(["READ"])).await;
    assert_eq!((status, body["permissions"].clone()), (200, json!(["READ"])), "{body}");
    let (status, body) = put(writer_id.clone(), json!(["write", "READ"])).await;
    assert_eq!((status, body["permissions"].clone()), (200, json!(["READ", "WRITE"])), "{body}");
    assert_eq!(put(foreign_id, json!(["READ"])).await.0, 404);
    assert_eq!(put(writer_id.clone(), json!(["ADMIN"])).await.1["error"]["field"], "permissions[0]");
    let (_, list) = get(&app, &format!("/v1/tables/{p}/permissions")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);

    let denied = |permission: &str| json!(format!("Permission denied: {permission} access required"));
    // READ only: reads, but neither writes nor deletes.
    assert_eq!(send(&app, &reader, reqwest::Method::GET, &format!("/v1/tables/{p}/rows/1"), None).await.0, 200);
    assert_eq!(send(&app, &reader, reqwest::Method::POST, &format!("/v1/tables/{p}/query"), Some(json!({}))).await.0, 200);
    assert_eq!(send(&app, &reader, reqwest::Method::POST, &format!("/v1/tables/{p}/search"), Some(json!({"query": "sweet"}))).await.0, 200);
    let (status, e) = send(&app, &reader, reqwest::Method::POST, &format!("/v1/tables/{p}/rows"), Some(json!({"values": {"name": "x"}}))).await;
    assert_eq!((status, e["error"]["message"].clone(), e["error"]["code"].clone()), (403, denied("WRITE"), json!("permission_denied")), "{e}");
    let (status, e) = send(&app, &reader, reqwest::Method::PATCH, &format!("/v1/tables/{p}/rows/1"), Some(json!({"values": {"name": "x"}}))).await;
    assert_eq!((status, e["error"]["message"].clone()), (403, denied("WRITE")));
    let (status, _) = put_csv(&app, Some(&reader), reqwest::Method::POST, &format!("/v1/tables/{p}/import"), "name\nx\n").await;
    assert_eq!(status, 403);
    assert_eq!(send(&app, &reader, reqwest::Method::POST, &format!("/v1/tables/{p}/upload-links"), Some(json!({}))).await.0, 403);
    let (status, e) = send(&app, &reader, reqwest::Method::DELETE, &format!("/v1/tables/{p}/rows/1"), None).await;
    assert_eq!((status, e["error"]["message"].clone()), (403, denied("DELETE")));
    // Nor can it widen its own grant, drop it, change the table or delete it.
    let (status, e) = send(&app, &reader, reqwest::Method::DELETE, &format!("/v1/tables/{p}/permissions/{reader_id}"), None).await;
    assert_eq!((status, e["error"]["message"].clone()), (403, denied("WRITE")), "{e}");
    let (status, _) = send(&app, &reader, reqwest::Method::PUT, &format!("/v1/tables/{p}/permissions/{reader_id}"), Some(json!({"permissions": ["READ", "WRITE", "DELETE"]}))).await;
    assert_eq!(status, 403);
    assert_eq!(send(&app, &reader, reqwest::Method::PATCH, &format!("/v1/tables/{p}"), Some(json!({"name": "mine"}))).await.0, 403);
    assert_eq!(send(&app, &reader, reqwest::Method::DELETE, &format!("/v1/tables/{p}"), None).await.0, 403);

    // READ and WRITE: no delete.
    assert_eq!(send(&app, &writer, reqwest::Method::POST, &format!("/v1/tables/{p}/rows"), Some(json!({"values": {"name": "x"}}))).await.0, 201);
    let (status, e) = send(&app, &writer, reqwest::Method::POST, &format!("/v1/tables/{p}/rows/batch-delete"), Some(json!({"ids": [9]}))).await;
    assert_eq!((status, e["error"]["message"].clone()), (403, denied("DELETE")));
    let (status, e) = send(&app, &writer, reqwest::Method::DELETE, &format!("/v1/tables/{p}/rows/9"), None).await;
    assert_eq!((status, e["error"]["message"].clone()), (403, denied("DELETE")));

    // A join reads both tables: a key limited to WRITE on orders cannot read through it.
    let (status, _) = send(&app, &app.key, reqwest::Method::PUT, &format!("/v1/tables/{o}/permissions/{reader_id}"), Some(json!({"permissions": ["WRITE"]}))).await;
    assert_eq!(status, 200);
    let join = json!({"alias": "p", "join": {"table": "orders", "alias": "o", "on": {"left": "p.id", "right": "o.product_id"}}});
    let (status, e) = send(&app, &reader, reqwest::Method::POST, &format!("/v1/tables/{p}/query"), Some(join.clone())).await;
    assert_eq!((status, e["error"]["message"].clone()), (403, denied("READ")));

    // No grant: everything.
    assert_eq!(send(&app, &free, reqwest::Method::POST, &format!("/v1/tables/{p}/query"), Some(join)).await.0, 200);
    assert_eq!(send(&app, &free, reqwest::Method::DELETE, &format!("/v1/tables/{p}/rows/9"), None).await.0, 204);
    // A grant removed: everything again.
    assert_eq!(send(&app, &app.key, reqwest::Method::DELETE, &format!("/v1/tables/{p}/permissions/{reader_id}"), None).await.0, 204);
    assert_eq!(send(&app, &reader, reqwest::Method::DELETE, &format!("/v1/tables/{p}/rows/8"), None).await.0, 204);
}

#[tokio::test]
async fn tables_limits_at_n_and_n_plus_one() {
    let app = spawn_app().await;
    let columns = |n: usize| (0..n).map(|i| json!({"name": format!("c_{i}"), "type": "integer"})).collect::<Vec<_>>();
    assert_eq!(post(&app, "/v1/tables", json!({"name": "wide", "columns": columns(100)})).await.0, 201);
    let (status, e) = post(&app, "/v1/tables", json!({"name": "wider", "columns": columns(101)})).await;
    assert_eq!((status, e["error"]["field"].clone()), (400, json!("columns")));
    let (status, e) = send(&app, &app.key, reqwest::Method::PATCH, "/v1/tables/wide", Some(json!({"add_columns": [{"name": "more", "type": "string"}]}))).await;
    assert_eq!((status, e["error"]["field"].clone()), (400, json!("add_columns")));
    let name = "n".repeat(64);
    assert_eq!(post(&app, "/v1/tables", json!({"name": name, "columns": [{"name": name, "type": "string"}]})).await.0, 201);
    let long = format!("{name}x");
    assert_eq!(post(&app, "/v1/tables", json!({"name": long, "columns": []})).await.1["error"]["field"], "name");
    assert_eq!(post(&app, "/v1/tables", json!({"name": "t", "columns": [{"name": long, "type": "string"}]})).await.1["error"]["field"], "columns[0].name");

    let t = create_table(&app, json!({"name": "limits", "columns": [{"name": "s", "type": "string"}, {"name": "l", "type": "long_text"}]})).await;
    let id = t["id"].as_str().unwrap();
    let rows = |n: usize| (0..n).map(|i| json!({"s": format!("r{i}")})).collect::<Vec<_>>();
    assert_eq!(post(&app, &format!("/v1/tables/{id}/rows"), json!({"rows": rows(1000)})).await.0, 201);
    let (status, e) = post(&app, &format!("/v1/tables/{id}/rows"), json!({"rows": rows(1001)})).await;
    assert_eq!((status, e["error"]["field"].clone()), (400, json!("rows")));
    assert_eq!(post(&app, &format!("/v1/tables/{id}/rows"), json!({"values": {"s": "a".repeat(10_000)}})).await.0, 201);
    assert_eq!(post(&app, &format!("/v1/tables/{id}/rows"), json!({"values": {"s": "a".repeat(10_001)}})).await.1["error"]["field"], "values.s");
    assert_eq!(post(&app, &format!("/v1/tables/{id}/rows"), json!({"values": {"l": "a".repeat(1_000_000)}})).await.0, 201);
    assert_eq!(post(&app, &format!("/v1/tables/{id}/rows"), json!({"values": {"l": "a".repeat(1_000_001)}})).await.1["error"]["field"], "values.l");
    assert_eq!(query(&app, id, json!({"per_page": 100})).await["data"].as_array().unwrap().len(), 100);
    assert_eq!(post(&app, &format!("/v1/tables/{id}/query"), json!({"per_page": 101})).await.1["error"]["field"], "per_page");
    assert_eq!(get(&app, &format!("/v1/tables/{id}/rows?per_page=101")).await.0, 400);

    // A CSV of exactly 10 MiB is read; one byte more is refused before it is.
    let limit = agentd_engine::MAX_CSV_BYTES;
    let mut csv = String::from("l\n");
    while csv.len() + 900_001 < limit {
        csv.push_str(&"b".repeat(900_000));
        csv.push('\n');
    }
    let rest = limit - csv.len() - 1;
    csv.push_str(&"c".repeat(rest));
    csv.push('\n');
    assert_eq!(csv.len(), limit);
    let (status, body) = put_csv(&app, Some(&app.key), reqwest::Method::POST, &format!("/v1/tables/{id}/import"), csv.clone()).await;
    assert_eq!(status, 200, "{body}");
    csv.push('\n');
    let (status, _) = put_csv(&app, Some(&app.key), reqwest::Method::POST, &format!("/v1/tables/{id}/import"), csv).await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn tables_fulltext_search_and_vector_status() {
    let app = spawn_app().await;
    let (p, _) = shop(&app).await;
    let search = |body: Value| {
        let app = &app;
        let p = p.clone();
        async move { post(app, &format!("/v1/tables/{p}/search"), body).await }
    };
    let (status, hits) = search(json!({"query": "sweet", "mode": "fulltext"})).await;
    assert_eq!(status, 200, "{hits}");
    let mut ids: Vec<i64> = column(&hits, "id").iter().map(|v| v.as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, vec![2, 4, 8]);
    assert!(hits["data"][0]["score"].as_f64().unwrap() > 0.0);
    let (_, hits) = search(json!({"query": "apple", "columns": ["name"]})).await;
    assert_eq!(column(&hits, "name"), vec![json!("Apple")]);
    let (_, hits) = search(json!({"query": "golden \"ring", "limit": 1})).await;
    assert_eq!(hits["data"].as_array().unwrap().len(), 1);
    let (status, e) = search(json!({"query": "sweet", "mode": "semantic"})).await;
    assert_eq!((status, e["error"]["field"].clone()), (400, json!("mode")));
    assert!(e["error"]["message"].as_str().unwrap().contains("embedding model"));
    let (status, e) = search(json!({"query": "sweet", "columns": ["price"]})).await;
    assert_eq!((status, e["error"]["field"].clone()), (400, json!("columns[0]")));
    // An edited row is found by its new words, not its old ones.
    send(&app, &app.key, reqwest::Method::PATCH, &format!("/v1/tables/{p}/rows/2"), Some(json!({"values": {"notes": "mushy"}}))).await;
    let (_, hits) = search(json!({"query": "mushy yellow"})).await;
    assert_eq!(column(&hits, "id"), vec![json!(2)]);
    let (_, hits) = search(json!({"query": "yellow"})).await;
    assert_eq!(hits["data"], json!([]));

    // A vectorized column: rows wait for embeddings.
    let (status, e) = post(&app, "/v1/tables", json!({"name": "bad", "columns": [{"name": "n", "type": "integer", "vectorized": true}]})).await;
    assert_eq!((status, e["error"]["field"].clone()), (400, json!("columns[0].vectorized")));
    let docs = create_table(&app, json!({"name": "docs", "columns": [{"name": "title", "type": "string"}, {"name": "body", "type": "long_text", "vectorized": true}]})).await;
    assert_eq!(docs["columns"][1]["vectorized"], true);
    let d = docs["id"].as_str().unwrap();
    let (_, row) = post(&app, &format!("/v1/tables/{d}/rows"), json!({"values": {"title": "t", "body": "hello"}})).await;
    assert_eq!(row["vector_status"], "PENDING");
    let engine = &app.server.as_ref().unwrap().engine;
    let table = engine.find_table(docs_project(&app).await, d).await.unwrap();
    assert_eq!(engine.pending_vector_rows(&table, 10).await.unwrap().rows.len(), 1);
    engine.set_vector_status(&table, &[1], "DONE").await.unwrap();
    assert_eq!(get(&app, &format!("/v1/tables/{d}/rows/1")).await.1["vector_status"], "DONE");
    // Changing only the title leaves it embedded; changing the body does not.
    send(&app, &app.key, reqwest::Method::PATCH, &format!("/v1/tables/{d}/rows/1"), Some(json!({"values": {"title": "u"}}))).await;
    assert_eq!(get(&app, &format!("/v1/tables/{d}/rows/1")).await.1["vector_status"], "DONE");
    let (_, row) = send(&app, &app.key, reqwest::Method::PATCH, &format!("/v1/tables/{d}/rows/1"), Some(json!({"values": {"body": "bye"}}))).await;
    assert_eq!(row["vector_status"], "PENDING");
    engine.set_vector_status(&table, &[1], "DONE").await.unwrap();
    let (status, body) = post(&app, &format!("/v1/tables/{d}/rows/1/reindex"), json!({})).await;
    assert_eq!((status, body["vector_status"].clone()), (200, json!("PENDING")));
    assert_eq!(post(&app, &format!("/v1/tables/{p}/rows/1/reindex"), json!({})).await.0, 409);
}

async fn docs_project(app: &TestApp) -> agentd_domain::ProjectId {
    app.store().project_by_name("default").await.unwrap().unwrap().id
}

#[tokio::test]
async fn tables_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_at(dir.path(), |_| {}).await;
    let (p, _) = shop(&app).await;
    app.shutdown().await;
    let app = spawn_at(dir.path(), |_| {}).await;
    assert_eq!(get(&app, &format!("/v1/tables/{p}")).await.1["row_count"], 8);
    assert_eq!(ids_where(&app, &p, json!({"column": "price", "op": "gt", "value": 3})).await, vec![6, 8]);
    let (_, hits) = post(&app, &format!("/v1/tables/{p}/search"), json!({"query": "garlic"})).await;
    assert_eq!(column(&hits, "id"), vec![json!(7)]);
    let (status, row) = post(&app, &format!("/v1/tables/{p}/rows"), json!({"values": {"name": "Ice"}})).await;
    assert_eq!((status, row["id"].clone()), (201, json!(9)));
}

#[tokio::test]
async fn tables_agents_use_the_table_tools_their_version_names() {
    let llm = agentd_testllm::ScriptedLlm::start().await;
    let app = spawn_agents(&llm.openai_base_url(), |_| {}).await;
    let (p, _) = shop(&app).await;
    // A version that names the table tools gets them; another does not.
    let plain: Value = app.post("/v1/agents", json!({"name": "Plain", "kind": "chat", "publish": true})).await.json().await.unwrap();
    let agent: Value = app.post("/v1/agents", json!({"name": "Clerk", "kind": "chat", "tools": ["table_query", "table_insert", "table_search"], "publish": true})).await.json().await.unwrap();
    llm.push(agentd_testllm::Reply::tool_call("table_query", json!({"table": "products", "filter": {"column": "price", "op": "gt", "value": 3.5}, "select": [{"column": "name"}]})));
    llm.push(agentd_testllm::Reply::tool_call("table_insert", json!({"table": "products", "rows": [{"name": "Jam", "price": 3.2}]})));
    llm.push(agentd_testllm::Reply::tool_call("table_insert", json!({"table": "products", "rows": [{"price": 1}]})));
    llm.push(agentd_testllm::Reply::tool_call("table_search", json!({"table": "products", "query": "garlic"})));
    llm.push(agentd_testllm::Reply::tool_call("answer", json!({"answer": "Fig and Honey."})));
    let session = app.create_with(json!({"goal": "Which products cost more than 3.5?", "agent_id": agent["id"], "max_cycles": 6})).await;
    let id = session["id"].as_str().unwrap().to_owned();
    let done = app.wait_status(&id, "completed").await;
    assert_eq!(done["response"]["answer"], "Fig and Honey.", "{done}");

    let requests = llm.requests();
    let offered: Vec<&str> = requests[0].body["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert!(offered.contains(&"table_query") && offered.contains(&"table_search"), "{offered:?}");
    let second = requests[1].text();
    assert!(second.contains(r#"{\"name\":\"Fig\"}"#) || second.contains(r#""name":"Fig""#), "the model read the rows: {second}");
    assert!(second.contains("Honey"), "{second}");
    assert!(requests[3].text().contains("rows[0].name"), "a refused insert names the field");
    assert!(requests[4].text().contains("strong smell"), "the search found Garlic");
    assert_eq!(get(&app, &format!("/v1/tables/{p}")).await.1["row_count"], 9);

    llm.push(agentd_testllm::Reply::tool_call("answer", json!({"answer": "No tables here."})));
    let session = app.create_with(json!({"goal": "Anything?", "agent_id": plain["id"]})).await;
    app.wait_status(session["id"].as_str().unwrap(), "completed").await;
    let last = llm.requests().last().unwrap().body.clone();
    let offered: Vec<String> = last["tools"].as_array().map(|tools| tools.iter().map(|t| t["function"]["name"].as_str().unwrap().to_owned()).collect()).unwrap_or_default();
    assert!(!offered.iter().any(|t| t.starts_with("table_")), "{offered:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn tables_a_change_made_from_a_stale_definition_is_refused() {
    let app = spawn_app().await;
    let (p, _) = shop(&app).await;
    let engine = &app.server.as_ref().unwrap().engine;
    let project = docs_project(&app).await;
    let stale = engine.find_table(project, &p).await.unwrap();
    let add = |name: &str| agentd_engine::TableChange {
        name: None,
        description: None,
        add_columns: vec![agentd_engine::NewColumn { name: name.into(), column_type: agentd_domain::table::ColumnType::String, vectorized: false, required: false }],
    };
    engine.update_table(&stale, add("colour")).await.unwrap();
    let refused = engine.update_table(&stale, add("size")).await.unwrap_err();
    assert!(matches!(refused, agentd_engine::EngineError::Conflict(_)), "{refused:?}");
    // From the current definition, the change goes through; no column was lost.
    let current = engine.find_table(project, &p).await.unwrap();
    let changed = engine.update_table(&current, add("size")).await.unwrap();
    let names: Vec<&str> = changed.columns.iter().map(|c| c.name.as_str()).collect();
    assert!(names.ends_with(&["colour", "size"]), "{names:?}");
    app.shutdown().await;
}
