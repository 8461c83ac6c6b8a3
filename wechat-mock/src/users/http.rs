//! The HTTP face of `/cgi-bin/user/info`: query parameters in, WeChat's JSON out. GET is the
//! documented method; POST with the same query is answered alike, as the token endpoint does.

use std::collections::HashMap;

use poem::{
    get, handler,
    web::{Data, Json},
    IntoResponse, Request, Response, Route,
};

use super::USER_INFO_PATH;
use crate::state::MockWechat;

/// Adds the user endpoints to `route`.
pub(crate) fn routes(route: Route) -> Route {
    route.at(USER_INFO_PATH, get(user_info).post(user_info))
}

#[handler]
fn user_info(req: &Request, Data(mock): Data<&MockWechat>) -> Response {
    // An undecodable query string reads as no parameters at all.
    let params: HashMap<String, String> = req.params().unwrap_or_default();
    let param = |name: &str| params.get(name).map_or("", String::as_str);
    // `lang` only picks the language of country/city names, which WeChat no longer returns.
    match mock.user_info(param("access_token"), param("openid")) {
        Ok(info) => Json(info).into_response(),
        Err(err) => err.to_response(mock.now_ms()),
    }
}
