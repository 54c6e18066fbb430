//! The three PATCH formats the API server accepts for these resources.
//!
//! * `application/merge-patch+json`: RFC 7386.
//! * `application/strategic-merge-patch+json`: applied as a merge patch, which is exact for
//!   the maps plexus patches (metadata, annotations, labels, status fields). Lists are
//!   **replaced** rather than merged by their patch-merge key (a real server merges e.g.
//!   `spec.containers` by name). The `$patch: replace` and `$patch: delete` directives work on
//!   maps; other `$`-directives (`$setElementOrder/...`, `$retainKeys`, `$deleteFromPrimitiveList`)
//!   are dropped.
//! * `application/json-patch+json`: RFC 6902, every operation (add, remove, replace, move,
//!   copy, test).

use serde_json::{Map, Value};

/// RFC 7386: objects merge key by key, `null` deletes, anything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("just made an object");
    for (k, v) in p {
        if v.is_null() {
            t.shift_remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// A strategic merge patch, as a merge patch with map directives (see the module doc).
pub(crate) fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("delete") => {
            *target = Value::Null;
            return;
        }
        Some("replace") => {
            *target = Value::Object(Map::new());
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("just made an object");
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.shift_remove(k);
            continue;
        }
        let slot = t.entry(k.clone()).or_insert(Value::Null);
        strategic_merge_patch(slot, v);
        if slot.is_null() {
            t.shift_remove(k);
        }
    }
}

/// RFC 6902. Errors name the failing operation.
pub(crate) fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let ops = patch
        .as_array()
        .ok_or("a JSON patch must be a JSON array of operations")?;
    for (i, op) in ops.iter().enumerate() {
        apply_op(target, op).map_err(|e| format!("operation {i} ({op}): {e}"))?;
    }
    Ok(())
}

fn apply_op(target: &mut Value, op: &Value) -> Result<(), String> {
    let field = |name: &str| -> Result<&str, String> {
        op.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("missing string field {name:?}"))
    };
    let value = || op.get("value").cloned().ok_or("missing field \"value\"");
    let path = parse_pointer(field("path")?)?;
    match field("op")? {
        "add" => add(target, &path, value()?),
        "remove" => remove(target, &path).map(drop),
        "replace" => {
            let v = value()?;
            *get_mut(target, &path)? = v;
            Ok(())
        }
        "move" => {
            let from = parse_pointer(field("from")?)?;
            if path.len() > from.len() && path[..from.len()] == from[..] {
                return Err("cannot move a value into one of its children".into());
            }
            let v = remove(target, &from)?;
            add(target, &path, v)
        }
        "copy" => {
            let from = parse_pointer(field("from")?)?;
            let v = get_mut(target, &from)?.clone();
            add(target, &path, v)
        }
        "test" => {
            let v = value()?;
            let have = get_mut(target, &path)?;
            if *have == v {
                Ok(())
            } else {
                Err(format!("test failed: the value is {have}"))
            }
        }
        other => Err(format!("unknown op {other:?}")),
    }
}

/// RFC 6901: `/a/b~1c/0` → `["a", "b/c", "0"]`.
fn parse_pointer(p: &str) -> Result<Vec<String>, String> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let rest = p
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid JSON pointer {p:?}"))?;
    Ok(rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn index(arr: &[Value], token: &str, allow_end: bool) -> Result<usize, String> {
    if token == "-" && allow_end {
        return Ok(arr.len());
    }
    let i: usize = token
        .parse()
        .ok()
        .filter(|_| token == "0" || !token.starts_with('0'))
        .ok_or_else(|| format!("invalid array index {token:?}"))?;
    let in_bounds = if allow_end {
        i <= arr.len()
    } else {
        i < arr.len()
    };
    if !in_bounds {
        return Err(format!("array index {i} out of bounds"));
    }
    Ok(i)
}

fn get_mut<'a>(mut v: &'a mut Value, path: &[String]) -> Result<&'a mut Value, String> {
    for token in path {
        v = match v {
            Value::Object(m) => m
                .get_mut(token)
                .ok_or_else(|| format!("no member {token:?}"))?,
            Value::Array(a) => {
                let i = index(a, token, false)?;
                &mut a[i]
            }
            _ => return Err(format!("cannot descend into a scalar at {token:?}")),
        };
    }
    Ok(v)
}

fn add(target: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        *target = value;
        return Ok(());
    };
    match get_mut(target, parent)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let i = index(a, last, true)?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err("the parent of the path is not a container".into()),
    }
}

fn remove(target: &mut Value, path: &[String]) -> Result<Value, String> {
    let (last, parent) = path
        .split_last()
        .ok_or("cannot remove the whole document")?;
    match get_mut(target, parent)? {
        Value::Object(m) => m
            .shift_remove(last)
            .ok_or_else(|| format!("no member {last:?}")),
        Value::Array(a) => {
            let i = index(a, last, false)?;
            Ok(a.remove(i))
        }
        _ => Err("the parent of the path is not a container".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc7386_examples() {
        let mut t = json!({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
                           "tags": ["example", "sample"], "content": "This will be unchanged"});
        merge_patch(
            &mut t,
            &json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890",
                    "author": {"familyName": null}, "tags": ["example"]}),
        );
        assert_eq!(
            t,
            json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
                   "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"})
        );
    }

    #[test]
    fn smp_directives() {
        let mut t =
            json!({"metadata": {"labels": {"a": "1", "b": "2"}, "annotations": {"x": "y"}}});
        strategic_merge_patch(
            &mut t,
            &json!({"metadata": {"labels": {"$patch": "replace", "c": "3"},
                                 "annotations": {"$patch": "delete"},
                                 "$setElementOrder/finalizers": []}}),
        );
        assert_eq!(t, json!({"metadata": {"labels": {"c": "3"}}}));
    }

    #[test]
    fn rfc6902_ops() {
        let mut t = json!({"a": {"b": [1, 2]}, "c~d": 1});
        json_patch(
            &mut t,
            &json!([
                {"op": "test", "path": "/a/b/0", "value": 1},
                {"op": "add", "path": "/a/b/-", "value": 3},
                {"op": "add", "path": "/a/b/0", "value": 0},
                {"op": "replace", "path": "/c~0d", "value": 2},
                {"op": "copy", "from": "/a/b", "path": "/e"},
                {"op": "move", "from": "/e", "path": "/f"},
                {"op": "remove", "path": "/a/b/1"}
            ]),
        )
        .unwrap();
        assert_eq!(
            t,
            json!({"a": {"b": [0, 2, 3]}, "c~d": 2, "f": [0, 1, 2, 3]})
        );
        let err = json_patch(
            &mut t,
            &json!([{"op": "test", "path": "/c~0d", "value": 3}]),
        );
        assert!(err.unwrap_err().contains("test failed"));
        assert!(json_patch(&mut t, &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert!(
            json_patch(
                &mut t,
                &json!([{"op": "add", "path": "/a/b/9", "value": 1}])
            )
            .is_err()
        );
    }
}
