"""tools/openapi.py: each mapping rule, on a small synthetic API compiled with its comments."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import Any

import grpc_tools
import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from tools import openapi, protogen

DEMO_PROTO = """
syntax = "proto3";

package demo.v1;

import "google/api/annotations.proto";
import "google/api/field_behavior.proto";
import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
import "google/rpc/status.proto";
import "google/rpc/error_details.proto";

// Keeps things.
service ThingService {
  // Makes a thing.
  rpc MakeThing(MakeThingRequest) returns (Thing) {
    option (google.api.http) = {
      post: "/v1/{parent=shelves/*}/things"
      body: "thing"
      additional_bindings { put: "/v1/things/{thing.id}" body: "*" }
    };
  }
  // Finds things.
  rpc FindThings(FindThingsRequest) returns (FindThingsResponse) {
    option (google.api.http) = {get: "/v1/things"};
  }
  // Renames a thing.
  rpc RenameThing(RenameThingRequest) returns (Thing) {
    option (google.api.http) = {post: "/v1/things/{id}:rename" body: "*"};
  }
  // Follows a thing.
  rpc FollowThing(GetThingRequest) returns (stream Thing) {
    option (google.api.http) = {get: "/v1/things/{id}:follow"};
  }
  // Only the labels of a thing.
  rpc GetLabels(GetThingRequest) returns (Thing) {
    option (google.api.http) = {get: "/v1/things/{id}/labels" response_body: "labels"};
  }
  // Not on HTTP.
  rpc Internal(GetThingRequest) returns (Thing);
}

// How big a thing is.
enum Size {
  // Unknown.
  SIZE_UNSPECIFIED = 0;
  // Small enough to carry.
  SIZE_SMALL = 1;
  SIZE_BIG = 2;
}

// A thing on a shelf.
message Thing {
  // Its id, set by the server.
  string id = 1 [(google.api.field_behavior) = OUTPUT_ONLY];
  // What people call it.
  string display_name = 2 [(google.api.field_behavior) = REQUIRED];
  int64 count = 3;
  uint64 big_count = 4;
  int32 small_count = 5;
  uint32 unsigned_count = 6;
  double ratio = 7;
  float ratio32 = 8;
  bool ok = 9;
  bytes blob = 10;
  sint64 signed_count = 11;
  fixed64 fixed_count = 12;
  Size size = 13;
  // When it was last seen.
  google.protobuf.Timestamp seen_time = 14;
  google.protobuf.Duration ttl = 15;
  google.protobuf.Int64Value maybe_count = 16;
  repeated string labels = 17;
  map<string, int64> scores = 18;
  Part part = 19;
  repeated Part parts = 20;
  string secret = 21 [(google.api.field_behavior) = INPUT_ONLY];
  oneof where {
    string shelf = 22;
    string box = 23;
  }
  optional string nickname = 24;
  google.protobuf.Any extra = 25;
  google.rpc.Status last_error = 26;
  string both = 27 [(google.api.field_behavior) = REQUIRED, (google.api.field_behavior) = IMMUTABLE];

  // One part of a thing.
  message Part {
    // Stock keeping unit.
    string sku = 1;
    // Parts refer back to things.
    Thing owner = 2;
  }
}

// Request of MakeThing.
message MakeThingRequest {
  // The shelf.
  string parent = 1 [(google.api.field_behavior) = REQUIRED];
  // The thing to make.
  Thing thing = 2 [(google.api.field_behavior) = REQUIRED];
  // Dedup id.
  string request_id = 3;
}

// A time window.
message Window {
  int64 start = 1;
  int64 end = 2;
}

// Request of FindThings.
message FindThingsRequest {
  // A filter expression.
  string filter = 1;
  int32 page_size = 2;
  Size size = 3;
  repeated string tags = 4;
  Window window = 5;
  map<string, string> attrs = 6;
  google.protobuf.Timestamp since = 7;
  // Must be given.
  string must = 8 [(google.api.field_behavior) = REQUIRED];
  repeated Window windows = 9;
}

// Response of FindThings.
message FindThingsResponse {
  repeated Thing things = 1;
}

// Request of RenameThing.
message RenameThingRequest {
  string id = 1 [(google.api.field_behavior) = REQUIRED];
  // The new name.
  string display_name = 2;
}

// Request of GetThing.
message GetThingRequest {
  // The thing's id.
  string id = 1;
}

// Nothing refers to it.
message Unused {
  string nothing = 1;
}
"""

DEMO_API = openapi.Api(
    service="demo.v1.ThingService",
    title="Demo",
    server="http://127.0.0.1:9",
    headers={
        "MakeThing": (
            openapi.Header(
                name="Idempotency-Key",
                description="Retry safely.",
                schema={"type": "string"},
                errors=("AlreadyExists",),
            ),
        )
    },
    any_types={"google.rpc.Status.details": ("google.rpc.ErrorInfo", "google.rpc.BadRequest")},
)

Json = dict[str, Any]


def _compile(tmp: Path, files: dict[str, str], roots: list[str]) -> descriptor_pb2.FileDescriptorSet:
    for name, text in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    third_party = tmp / "third_party"
    protogen.vendor(third_party)
    out = tmp / "described.binpb"
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    args = ["protoc", f"-I{tmp}", f"-I{third_party}", f"-I{well_known}", "--include_imports", "--include_source_info"]
    assert protoc.main([*args, f"--descriptor_set_out={out}", *roots]) == 0
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


@pytest.fixture(scope="module")
def fds(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    return _compile(tmp_path_factory.mktemp("demo"), {"demo/v1/demo.proto": DEMO_PROTO}, ["demo/v1/demo.proto"])


@pytest.fixture(scope="module")
def doc(fds: descriptor_pb2.FileDescriptorSet) -> Json:
    return openapi.build(fds, DEMO_API)


def _schema(doc: Json, name: str) -> Json:
    schema: Json = doc["components"]["schemas"][name]
    return schema


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(doc: Json, path: str, verb: str) -> Json:
    operation: Json = doc["paths"][path][verb]
    return operation


def _params(operation: Json, where: str) -> dict[str, Json]:
    return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == where}


# --- schemas: the proto3 JSON mapping ---------------------------------------------------------


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        ("count", {"type": "string", "format": "int64"}),
        ("signedCount", {"type": "string", "format": "int64"}),
        ("bigCount", {"type": "string", "format": "uint64"}),
        ("fixedCount", {"type": "string", "format": "uint64"}),
        ("smallCount", {"type": "integer", "format": "int32"}),
        ("unsignedCount", {"type": "integer", "format": "uint32", "minimum": 0}),
        ("ratio", {"type": "number", "format": "double"}),
        ("ratio32", {"type": "number", "format": "float"}),
        ("ok", {"type": "boolean"}),
        ("blob", {"type": "string", "contentEncoding": "base64"}),
        ("size", _ref("demo.v1.Size")),
        ("ttl", {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"}),
        ("maybeCount", {"type": "string", "format": "int64"}),
        ("labels", {"type": "array", "items": {"type": "string"}}),
        ("scores", {"type": "object", "additionalProperties": {"type": "string", "format": "int64"}}),
        ("part", _ref("demo.v1.Thing.Part")),
        ("parts", {"type": "array", "items": _ref("demo.v1.Thing.Part")}),
        ("nickname", {"type": "string"}),
        ("lastError", _ref("google.rpc.Status")),
    ],
)
def test_field_types_follow_the_proto3_json_mapping(doc: Json, prop: str, expected: Json) -> None:
    assert _schema(doc, "demo.v1.Thing")["properties"][prop] == expected


def test_timestamp_is_a_date_time_string_with_its_comment(doc: Json) -> None:
    assert _schema(doc, "demo.v1.Thing")["properties"]["seenTime"] == {
        "type": "string",
        "format": "date-time",
        "description": "When it was last seen.",
    }


def test_property_names_are_the_lower_camel_case_json_names(doc: Json) -> None:
    props = _schema(doc, "demo.v1.Thing")["properties"]
    assert {"displayName", "bigCount", "seenTime", "lastError", "ratio32"} <= set(props)
    assert not any("_" in name for name in props)


def test_any_is_an_object_tagged_by_at_type(doc: Json) -> None:
    extra = _schema(doc, "demo.v1.Thing")["properties"]["extra"]
    assert extra["type"] == "object"
    assert extra["required"] == ["@type"]
    assert extra["properties"]["@type"] == {"type": "string"}


def test_configured_any_details_are_a_oneof_of_tagged_messages(doc: Json) -> None:
    details = _schema(doc, "google.rpc.Status")["properties"]["details"]
    assert details["type"] == "array"
    variants = details["items"]["oneOf"]
    assert [v["allOf"] for v in variants] == [[_ref("google.rpc.ErrorInfo")], [_ref("google.rpc.BadRequest")]]
    assert [v["properties"]["@type"]["const"] for v in variants] == [
        "type.googleapis.com/google.rpc.ErrorInfo",
        "type.googleapis.com/google.rpc.BadRequest",
    ]
    assert all(v["required"] == ["@type"] for v in variants)
    assert "`google.rpc.BadRequest`" in details["description"]


def test_field_behavior_sets_required_read_only_and_write_only(doc: Json) -> None:
    thing = _schema(doc, "demo.v1.Thing")
    assert thing["required"] == ["displayName", "both"]
    read_only = {name for name, prop in thing["properties"].items() if prop.get("readOnly")}
    write_only = {name for name, prop in thing["properties"].items() if prop.get("writeOnly")}
    assert read_only == {"id"}
    assert write_only == {"secret"}
    assert "required" not in _schema(doc, "demo.v1.FindThingsResponse")


def test_enums_are_strings_listing_their_value_names_in_number_order(doc: Json) -> None:
    size = _schema(doc, "demo.v1.Size")
    assert size["type"] == "string"
    assert size["enum"] == ["SIZE_UNSPECIFIED", "SIZE_SMALL", "SIZE_BIG"]
    assert size["description"] == (
        "How big a thing is.\n\n- `SIZE_UNSPECIFIED`: Unknown.\n- `SIZE_SMALL`: Small enough to carry.\n- `SIZE_BIG`"
    )


def test_leading_comments_become_descriptions(doc: Json) -> None:
    thing = _schema(doc, "demo.v1.Thing")
    assert thing["description"].startswith("A thing on a shelf.")
    assert thing["properties"]["id"]["description"] == "Its id, set by the server."
    assert "description" not in thing["properties"]["count"]
    assert _schema(doc, "demo.v1.Thing.Part")["properties"]["sku"]["description"] == "Stock keeping unit."
    assert _op(doc, "/v1/things", "get")["description"] == "Finds things."
    assert doc["tags"] == [{"name": "ThingService", "description": "Keeps things."}]


def test_a_ref_keeps_its_field_description_and_behavior_beside_it(doc: Json) -> None:
    owner = _schema(doc, "demo.v1.Thing.Part")["properties"]["owner"]
    assert owner == {"$ref": "#/components/schemas/demo.v1.Thing", "description": "Parts refer back to things."}


def test_a_real_oneof_is_named_in_the_description_but_proto3_optional_is_not(doc: Json) -> None:
    description = _schema(doc, "demo.v1.Thing")["description"]
    assert "At most one of `shelf`, `box` is set (oneof `where`)." in description
    assert "nickname" not in description


def test_components_are_exactly_the_reachable_messages_and_enums(doc: Json) -> None:
    names = set(doc["components"]["schemas"])
    assert "demo.v1.Unused" not in names
    assert "demo.v1.MakeThingRequest" not in names  # body: "thing" sends only the Thing
    assert not any(name.startswith("google.protobuf.") for name in names)  # well-known types are inline
    assert {
        "demo.v1.Thing",
        "demo.v1.Thing.Part",
        "demo.v1.Size",
        "demo.v1.FindThingsResponse",
        "google.rpc.Status",
        "google.rpc.ErrorInfo",
        "google.rpc.BadRequest",
        "google.rpc.BadRequest.FieldViolation",
    } <= names
    for name in names:
        assert "$ref" not in doc["components"]["schemas"][name]


# --- paths and operations: the HTTP rules -----------------------------------------------------


def test_paths_and_methods_come_from_every_http_rule_and_only_those(doc: Json) -> None:
    routes = {(verb, path) for path, ops in doc["paths"].items() for verb in ops}
    assert routes == {
        ("post", "/v1/{parent}/things"),
        ("put", "/v1/things/{thing.id}"),
        ("get", "/v1/things"),
        ("post", "/v1/things/{id}:rename"),
        ("get", "/v1/things/{id}:follow"),
        ("get", "/v1/things/{id}/labels"),
    }
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert sorted(ids) == ["FindThings", "FollowThing", "GetLabels", "MakeThing", "MakeThing2", "RenameThing"]


def test_path_variables_are_required_path_parameters(doc: Json) -> None:
    make = _op(doc, "/v1/{parent}/things", "post")
    assert _params(make, "path") == {
        "parent": {
            "name": "parent",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": "The shelf.\n\nMatches `shelves/*`.",
        }
    }
    nested = _params(_op(doc, "/v1/things/{thing.id}", "put"), "path")["thing.id"]
    assert nested["schema"] == {"type": "string"}  # a path parameter is never readOnly


def test_get_query_parameters_are_the_fields_the_path_leaves(doc: Json) -> None:
    find = _op(doc, "/v1/things", "get")
    query = _params(find, "query")
    assert list(query) == ["filter", "pageSize", "size", "tags", "window.start", "window.end", "since", "must"]
    assert query["filter"]["description"] == "A filter expression."
    assert query["pageSize"]["schema"] == {"type": "integer", "format": "int32"}
    assert query["size"]["schema"] == _ref("demo.v1.Size")
    assert query["tags"]["schema"] == {"type": "array", "items": {"type": "string"}}
    assert query["tags"]["explode"] is True
    assert query["window.start"]["schema"] == {"type": "string", "format": "int64"}
    assert query["since"]["schema"] == {"type": "string", "format": "date-time"}
    assert query["must"]["required"] is True
    assert "required" not in query["filter"]
    assert "requestBody" not in find
    assert _params(_op(doc, "/v1/things/{id}:follow", "get"), "query") == {}


def test_body_field_sends_that_field_and_the_rest_go_to_the_query(doc: Json) -> None:
    make = _op(doc, "/v1/{parent}/things", "post")
    assert make["requestBody"] == {
        "required": True,
        "description": "The thing to make.",
        "content": {"application/json": {"schema": _ref("demo.v1.Thing")}},
    }
    assert list(_params(make, "query")) == ["requestId"]


def test_body_star_sends_the_request_less_its_path_fields(doc: Json) -> None:
    rename = _op(doc, "/v1/things/{id}:rename", "post")
    body = rename["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert schema["type"] == "object"
    assert list(schema["properties"]) == ["displayName"]
    assert body["required"] is False
    assert body["description"] == "Request of RenameThing."
    assert _params(rename, "query") == {}
    put = _op(doc, "/v1/things/{thing.id}", "put")
    assert list(put["requestBody"]["content"]["application/json"]["schema"]["properties"]) == [
        "parent",
        "thing",
        "requestId",
    ]
    assert put["requestBody"]["required"] is True


def test_response_body_picks_a_field_of_the_response(doc: Json) -> None:
    labels = _op(doc, "/v1/things/{id}/labels", "get")["responses"]["200"]
    assert labels["content"]["application/json"]["schema"] == {"type": "array", "items": {"type": "string"}}


def test_a_server_stream_is_text_event_stream_whose_events_carry_the_message_json(doc: Json) -> None:
    ok = _op(doc, "/v1/things/{id}:follow", "get")["responses"]["200"]
    assert list(ok["content"]) == ["text/event-stream"]
    stream = ok["content"]["text/event-stream"]
    assert list(stream) == ["schema"]  # one event's schema (Open API 3.1 has no itemSchema)
    assert stream["schema"]["type"] == "object"
    assert stream["schema"]["required"] == ["data"]
    data = stream["schema"]["properties"]["data"]
    assert data == {"type": "string", "contentMediaType": "application/json", "contentSchema": _ref("demo.v1.Thing")}
    assert "`data: <Thing JSON>`" in ok["description"]


def test_unary_success_is_the_response_message_as_json(doc: Json) -> None:
    ok = _op(doc, "/v1/things", "get")["responses"]["200"]
    assert ok == {
        "description": "Response of FindThings.",
        "content": {"application/json": {"schema": _ref("demo.v1.FindThingsResponse")}},
    }


def test_every_operation_requires_the_bearer_scheme(doc: Json) -> None:
    assert doc["components"]["securitySchemes"] == {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A JWT sent as `Authorization: Bearer <token>`.",
        }
    }
    for ops in doc["paths"].values():
        for op in ops.values():
            assert op["security"] == [{"bearerAuth": []}]


def test_configured_headers_are_header_parameters_of_their_method_only(doc: Json) -> None:
    for path, verb in (("/v1/{parent}/things", "post"), ("/v1/things/{thing.id}", "put")):
        assert _params(_op(doc, path, verb), "header") == {
            "Idempotency-Key": {
                "name": "Idempotency-Key",
                "in": "header",
                "description": "Retry safely.",
                "schema": {"type": "string"},
            }
        }
    assert _params(_op(doc, "/v1/things", "get"), "header") == {}


def test_error_responses_are_google_rpc_status_at_the_transcoder_http_codes(doc: Json) -> None:
    responses = doc["components"]["responses"]
    by_status = {
        "400": "InvalidArgument",
        "401": "Unauthenticated",
        "403": "PermissionDenied",
        "404": "NotFound",
        "409": "AlreadyExists",
        "413": "PayloadTooLarge",
        "429": "ResourceExhausted",
        "503": "Unavailable",
        "default": "Error",
    }
    assert set(responses) == set(by_status.values())
    for response in responses.values():
        assert response["content"] == {"application/json": {"schema": _ref("google.rpc.Status")}}
    assert "FAILED_PRECONDITION" in responses["InvalidArgument"]["description"]

    def errors(path: str, verb: str) -> dict[str, str]:
        return {
            status: r["$ref"].rpartition("/")[2]
            for status, r in _op(doc, path, verb)["responses"].items()
            if status != "200"
        }

    common = {s: by_status[s] for s in ("400", "401", "403", "429", "503", "default")}
    assert errors("/v1/things", "get") == common
    assert errors("/v1/things/{id}:follow", "get") == common | {"404": "NotFound"}
    assert errors("/v1/things/{id}:rename", "post") == common | {"404": "NotFound", "413": "PayloadTooLarge"}
    assert errors("/v1/{parent}/things", "post") == common | {
        "404": "NotFound",
        "409": "AlreadyExists",
        "413": "PayloadTooLarge",
    }


def test_info_servers_and_version(doc: Json) -> None:
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "Demo"
    assert doc["info"]["version"] == "v1"  # the proto package's version
    assert doc["info"]["description"].startswith("Keeps things.\n\nDerived from `demo/v1/demo.proto`")
    assert doc["servers"] == [{"url": "http://127.0.0.1:9"}]
    assert "license" not in doc["info"]


# --- output -----------------------------------------------------------------------------------


def test_output_is_deterministic_with_sorted_keys(fds: descriptor_pb2.FileDescriptorSet, doc: Json) -> None:
    text = openapi.render(doc)
    assert text == openapi.render(openapi.build(fds, DEMO_API))
    assert text.endswith("}\n")
    assert text.index('"components"') < text.index('"info"') < text.index('"openapi"') < text.index('"paths"')
    shuffled = dict(reversed(list(doc.items())))
    assert openapi.render(shuffled) == text


def test_write_reads_a_descriptor_set_file(fds: descriptor_pb2.FileDescriptorSet, doc: Json, tmp_path: Path) -> None:
    source = tmp_path / "described.binpb"
    source.write_bytes(fds.SerializeToString())
    out = tmp_path / "nested" / "openapi.json"
    openapi.write(source, out, DEMO_API)
    assert out.read_text(encoding="utf-8") == openapi.render(doc)


# --- what it refuses ---------------------------------------------------------------------------


def _variant(tmp_path: Path, service_body: str) -> descriptor_pb2.FileDescriptorSet:
    proto = textwrap.dedent(
        """
        syntax = "proto3";
        package bad.v1;
        import "google/api/annotations.proto";
        // A service.
        service Bad {
        %s
        }
        // A message.
        message M {
          string id = 1;
        }
        """
    ) % textwrap.indent(textwrap.dedent(service_body), "  ")
    return _compile(tmp_path, {"bad/v1/bad.proto": proto}, ["bad/v1/bad.proto"])


def test_client_streaming_is_refused(tmp_path: Path) -> None:
    fds = _variant(tmp_path, 'rpc Up(stream M) returns (M) { option (google.api.http) = {post: "/v1/m" body: "*"}; }')
    with pytest.raises(ValueError, match="client streaming"):
        openapi.build(fds, openapi.Api(service="bad.v1.Bad", title="t", server="http://127.0.0.1:9"))


def test_two_rules_for_one_route_are_refused(tmp_path: Path) -> None:
    fds = _variant(
        tmp_path,
        """
        rpc A(M) returns (M) { option (google.api.http) = {get: "/v1/m/{id}"}; }
        rpc B(M) returns (M) { option (google.api.http) = {get: "/v1/m/{id}"}; }
        """,
    )
    with pytest.raises(ValueError, match=r"two HTTP rules for GET /v1/m/\{id\}"):
        openapi.build(fds, openapi.Api(service="bad.v1.Bad", title="t", server="http://127.0.0.1:9"))


def test_links_lead_from_a_response_to_the_operations_its_fields_address(doc: Json) -> None:
    made = _op(doc, "/v1/{parent}/things", "post")["responses"]["200"]["links"]
    assert made == {
        target: {
            "operationId": target,
            "parameters": {"id": "$response.body#/id"},
            "description": f"{target} on the Thing returned, by its id.",
        }
        for target in ("FollowThing", "GetLabels", "RenameThing")
    }
    # Not from an operation that was called with the id already, nor from a stream or a response_body.
    for path, verb in (("/v1/things/{id}:rename", "post"), ("/v1/things/{id}:follow", "get"), ("/v1/things", "get")):
        assert "links" not in _op(doc, path, verb)["responses"]["200"], path


def test_field_schemas_add_the_services_rules_to_fields_and_parameters(fds: descriptor_pb2.FileDescriptorSet) -> None:
    rules: dict[str, Json] = {
        "demo.v1.Thing.count": {"pattern": "^[0-9]+$"},
        "demo.v1.Thing.labels": {"maxItems": 3},
        "demo.v1.Thing.part": {"required": ["sku"]},
        "demo.v1.GetThingRequest.id": {"format": "uuid"},
        "demo.v1.FindThingsRequest.page_size": {"minimum": 0},
    }
    doc = openapi.build(fds, dataclasses.replace(DEMO_API, field_schemas=rules))
    thing = _schema(doc, "demo.v1.Thing")["properties"]
    assert thing["count"] == {"type": "string", "format": "int64", "pattern": "^[0-9]+$"}
    assert thing["labels"] == {"type": "array", "items": {"type": "string"}, "maxItems": 3}
    assert thing["part"]["$ref"] == "#/components/schemas/demo.v1.Thing.Part"
    assert thing["part"]["required"] == ["sku"]
    follow = _params(_op(doc, "/v1/things/{id}:follow", "get"), "path")["id"]
    assert follow["schema"] == {"type": "string", "format": "uuid"}
    assert _params(_op(doc, "/v1/things", "get"), "query")["pageSize"]["schema"]["minimum"] == 0


def test_a_field_schema_for_a_field_the_document_lacks_is_refused(fds: descriptor_pb2.FileDescriptorSet) -> None:
    with pytest.raises(ValueError, match=r"demo\.v1\.Thing\.nope"):
        openapi.build(fds, dataclasses.replace(DEMO_API, field_schemas={"demo.v1.Thing.nope": {"minLength": 1}}))


def test_objects_take_unknown_keys_but_never_the_empty_one(doc: Json) -> None:
    objects = [s for s in doc["components"]["schemas"].values() if s.get("type") == "object" and "properties" in s]
    assert objects
    for schema in objects:
        assert schema["propertyNames"] == {"minLength": 1}
        assert "additionalProperties" not in schema  # the transcoder ignores a key it does not know
