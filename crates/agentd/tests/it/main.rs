//! Integration tests: the real server on port 0, spoken to over HTTP, SSE and WebSocket.

mod support;

mod agents;
mod audio;
mod browser_agent;
mod browser_egress;
mod cli_run;
mod computer_use;
mod contract;
mod control;
mod connections;
mod conversations;
mod assisfy;
mod assisters;
mod autessa;
mod autessadb;
mod cua;
mod live_page;
mod one_server;
mod crash;
mod faults;
mod ops;
mod research;
mod schedules;
mod secrets;
mod semantic;
mod sessions;
mod streams;
mod tables;
mod tenancy;
mod timeouts;
mod tools;
mod webhooks;
mod limits;
