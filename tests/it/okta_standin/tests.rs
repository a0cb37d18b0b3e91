//! The stand-in's own tests: its answers against Okta's spec and documentation.

use super::*;

#[tokio::test]
async fn starts() {
    let okta = OktaStandIn::start().await;
    assert!(okta.org_url().starts_with("http://127.0.0.1:"));
}
