#!/usr/bin/python3
"""Drive Carillon's Chime SDK Identity API with Debian's boto3 (python3-boto3 1.26.27, botocore 1.29.27).

Run by python-clients.test.mjs as `/usr/bin/python3 identity_boto3.py`. Reads from the environment:
  CARILLON_ENDPOINT        e.g. http://127.0.0.1:8080
  CARILLON_REGION          e.g. us-east-1
  CARILLON_ACCESS_KEY_ID, CARILLON_SECRET_ACCESS_KEY
  CARILLON_SUFFIX          a random suffix for names
Prints exactly one JSON line on stdout: {"ok": true, ...results} or {"ok": false, "step", "error", ...}.
The Node test asserts on the values; this script only records what boto3 returned.

Debian's identity model (botocore 1.29.27) has no bots, no user expiration settings and no
NotFoundException shape, so none of those are used here; a 404 arrives as a plain ClientError.
"""

import datetime
import json
import os
import sys
import traceback

results = {"ok": False, "step": "import"}


def emit():
    sys.stdout.write(json.dumps(results, default=str) + "\n")
    sys.stdout.flush()


try:
    import boto3
    import botocore
    from botocore.config import Config
    from botocore.exceptions import ClientError
except Exception as e:  # the Node test turns this into a clear failure
    results["error"] = f"cannot import boto3/botocore with {sys.executable}: {e!r}"
    emit()
    sys.exit(3)


def ts(v):
    """How boto3 handed a timestamp back: its Python type, whether it has a time zone, ISO text."""
    return {
        "type": type(v).__name__,
        "tz": (v.tzinfo is not None and v.utcoffset() == datetime.timedelta(0)) if isinstance(v, datetime.datetime) else None,
        "iso": v.isoformat() if isinstance(v, datetime.datetime) else repr(v),
        "epoch": v.timestamp() if isinstance(v, datetime.datetime) else None,
    }


def err(e):
    """What a ClientError carries."""
    r = e.response
    return {
        "class": type(e).__name__,
        "code": r.get("Error", {}).get("Code"),
        "message": r.get("Error", {}).get("Message"),
        "status": r.get("ResponseMetadata", {}).get("HTTPStatusCode"),
        "bodyCode": r.get("Code"),
    }


def expect_error(step, fn, **kw):
    results["step"] = step
    try:
        out = fn(**kw)
    except ClientError as e:
        return err(e)
    out.pop("ResponseMetadata", None)
    return {"class": None, "succeeded": json.loads(json.dumps(out, default=str))}


def status(out):
    return out["ResponseMetadata"]["HTTPStatusCode"]


def main():
    endpoint = os.environ["CARILLON_ENDPOINT"]
    region = os.environ["CARILLON_REGION"]
    sfx = os.environ["CARILLON_SUFFIX"]
    results["versions"] = {"boto3": boto3.__version__, "botocore": botocore.__version__, "python": sys.version.split()[0]}

    c = boto3.client(
        "chime-sdk-identity",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=os.environ["CARILLON_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["CARILLON_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    ops = c.meta.service_model.operation_names
    results["model"] = {
        "operations": len(ops),
        "hasBots": "CreateAppInstanceBot" in ops,
        "hasNotFoundClass": hasattr(c.exceptions, "NotFoundException"),
    }

    # CreateAppInstance
    results["step"] = "create_app_instance"
    ai_name = f"py-ai-{sfx}"
    out = c.create_app_instance(Name=ai_name, Metadata="from boto3", Tags=[{"Key": "origin", "Value": "boto3"}])
    ai = out["AppInstanceArn"]
    results["createAppInstance"] = {"status": status(out), "arn": ai, "name": ai_name}

    try:
        # CreateAppInstanceUser: an id with '@' and '.'
        results["step"] = "create_app_instance_user"
        user_id = f"py.user@example.com-{sfx}"
        out = c.create_app_instance_user(AppInstanceArn=ai, AppInstanceUserId=user_id, Name="Py User", Metadata="m1")
        user = out["AppInstanceUserArn"]
        results["createUser"] = {"status": status(out), "arn": user, "id": user_id}

        # two more users for pagination
        results["step"] = "create_app_instance_user (more)"
        others = []
        for i in (2, 3):
            o = c.create_app_instance_user(AppInstanceArn=ai, AppInstanceUserId=f"py{i}.{sfx}", Name=f"Py User {i}")
            others.append(o["AppInstanceUserArn"])
        results["otherUsers"] = others

        # DescribeAppInstanceUser
        results["step"] = "describe_app_instance_user"
        out = c.describe_app_instance_user(AppInstanceUserArn=user)
        u = out["AppInstanceUser"]
        results["describeUser"] = {
            "status": status(out),
            "arn": u.get("AppInstanceUserArn"),
            "name": u.get("Name"),
            "metadata": u.get("Metadata"),
            "created": ts(u.get("CreatedTimestamp")),
            "updated": ts(u.get("LastUpdatedTimestamp")),
            "keys": sorted(u.keys()),
        }

        # ListAppInstanceUsers with MaxResults=1, following NextToken (boto3 has no paginator here)
        results["step"] = "list_app_instance_users"
        pages, arns, token = [], [], None
        for _ in range(20):
            kw = {"AppInstanceArn": ai, "MaxResults": 1}
            if token is not None:
                kw["NextToken"] = token
            out = c.list_app_instance_users(**kw)
            page = out.get("AppInstanceUsers", [])
            pages.append({"status": status(out), "count": len(page), "hasToken": "NextToken" in out, "appInstanceArn": out.get("AppInstanceArn")})
            arns += [x["AppInstanceUserArn"] for x in page]
            token = out.get("NextToken")
            if token is None:
                break
        results["listUsers"] = {"pages": pages, "arns": arns}

        # UpdateAppInstanceUser
        results["step"] = "update_app_instance_user"
        out = c.update_app_instance_user(AppInstanceUserArn=user, Name="Py User Renamed", Metadata="m2")
        results["updateUser"] = {"status": status(out), "arn": out.get("AppInstanceUserArn")}
        out = c.describe_app_instance_user(AppInstanceUserArn=user)
        u = out["AppInstanceUser"]
        results["describeAfterUpdate"] = {"name": u.get("Name"), "metadata": u.get("Metadata"), "created": ts(u.get("CreatedTimestamp")), "updated": ts(u.get("LastUpdatedTimestamp"))}

        # CreateAppInstanceAdmin, then read it back
        results["step"] = "create_app_instance_admin"
        out = c.create_app_instance_admin(AppInstanceAdminArn=user, AppInstanceArn=ai)
        results["createAdmin"] = {"status": status(out), "admin": out.get("AppInstanceAdmin"), "appInstanceArn": out.get("AppInstanceArn")}
        results["step"] = "list_app_instance_admins"
        out = c.list_app_instance_admins(AppInstanceArn=ai)
        results["listAdmins"] = {"status": status(out), "admins": out.get("AppInstanceAdmins"), "appInstanceArn": out.get("AppInstanceArn")}
        results["step"] = "describe_app_instance_admin"
        out = c.describe_app_instance_admin(AppInstanceAdminArn=user, AppInstanceArn=ai)
        a = out["AppInstanceAdmin"]
        results["describeAdmin"] = {"status": status(out), "admin": a.get("Admin"), "appInstanceArn": a.get("AppInstanceArn"), "created": ts(a.get("CreatedTimestamp"))}

        # Tags
        results["step"] = "list_tags_for_resource"
        out = c.list_tags_for_resource(ResourceARN=ai)
        results["tagsOfAppInstance"] = {"status": status(out), "tags": out.get("Tags")}
        out = c.list_tags_for_resource(ResourceARN=user)
        results["tagsBefore"] = {"status": status(out), "tags": out.get("Tags")}
        results["step"] = "tag_resource"
        out = c.tag_resource(ResourceARN=user, Tags=[{"Key": "team", "Value": "blue"}, {"Key": "a:b", "Value": "x=y"}])
        results["tagResource"] = {"status": status(out), "keys": sorted(out.keys())}
        results["step"] = "list_tags_for_resource (after)"
        out = c.list_tags_for_resource(ResourceARN=user)
        results["tagsAfter"] = {"status": status(out), "tags": out.get("Tags")}

        # Errors
        results["notFound"] = expect_error(
            "describe_app_instance_user (missing)", c.describe_app_instance_user, AppInstanceUserArn=f"{ai}/user/nobody-{sfx}"
        )
        results["tooLongName"] = expect_error("create_app_instance (Name of 257)", c.create_app_instance, Name="n" * 257)

        # DeleteAppInstanceUser
        results["step"] = "delete_app_instance_user"
        out = c.delete_app_instance_user(AppInstanceUserArn=user)
        results["deleteUser"] = {"status": status(out), "keys": sorted(out.keys())}
        results["afterDeleteUser"] = expect_error(
            "describe_app_instance_user (deleted)", c.describe_app_instance_user, AppInstanceUserArn=user
        )
    finally:
        # DeleteAppInstance (also on the way out of a failure, so nothing is left behind)
        step = results["step"]
        results["step"] = "delete_app_instance"
        out = c.delete_app_instance(AppInstanceArn=ai)
        results["deleteAppInstance"] = {"status": status(out)}
        results["afterDeleteAppInstance"] = expect_error(
            "describe_app_instance (deleted)", c.describe_app_instance, AppInstanceArn=ai
        )
        results["step"] = step

    results["step"] = "done"
    results["ok"] = True


try:
    main()
    emit()
except Exception as e:
    results["ok"] = False
    results["error"] = f"{type(e).__name__}: {e}"
    if isinstance(e, ClientError):
        results["clientError"] = err(e)
    results["traceback"] = traceback.format_exc()
    emit()
    sys.exit(1)
