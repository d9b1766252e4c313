#!/usr/bin/python3
"""Drive Carillon's Pinpoint subset with Debian's boto3 (python3-boto3 1.26.27, botocore 1.29.27).

Run by pinpoint.test.mjs as `/usr/bin/python3 pinpoint_boto3.py`. Reads from the environment:
  CARILLON_ENDPOINT, CARILLON_REGION, CARILLON_ACCESS_KEY_ID, CARILLON_SECRET_ACCESS_KEY
  CARILLON_TOKEN_KEY       a P-256 private key in PEM (an APNs .p8)
Prints exactly one JSON line on stdout: {"ok": true, ...results} or {"ok": false, "step", "error", ...}.
The Node test asserts on the values; this script only records what boto3 returned.
"""

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
except Exception as e:
    results["error"] = f"cannot import boto3/botocore with {sys.executable}: {e!r}"
    emit()
    sys.exit(3)


def err(e):
    r = e.response
    return {
        "class": type(e).__name__,
        "code": r.get("Error", {}).get("Code"),
        "message": r.get("Error", {}).get("Message"),
        "status": r.get("ResponseMetadata", {}).get("HTTPStatusCode"),
    }


def main():
    results["versions"] = {"boto3": boto3.__version__, "botocore": botocore.__version__}
    pp = boto3.client(
        "pinpoint",
        endpoint_url=os.environ["CARILLON_ENDPOINT"],
        region_name=os.environ["CARILLON_REGION"],
        aws_access_key_id=os.environ["CARILLON_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["CARILLON_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1}),
    )
    results["step"] = "create_app"
    app = pp.create_app(CreateApplicationRequest={"Name": "py-app", "tags": {"k": "v"}})
    app_id = app["ApplicationResponse"]["Id"]
    results["createApp"] = {"status": app["ResponseMetadata"]["HTTPStatusCode"], "app": app["ApplicationResponse"]}

    results["step"] = "update_apns_channel"
    ch = pp.update_apns_channel(ApplicationId=app_id, APNSChannelRequest={
        "TokenKey": os.environ["CARILLON_TOKEN_KEY"], "TokenKeyId": "ABC123DEFG", "TeamId": "TEAM123456",
        "BundleId": "com.example.py", "Enabled": True})
    results["apnsChannel"] = ch["APNSChannelResponse"]

    results["step"] = "update_endpoint"
    up = pp.update_endpoint(ApplicationId=app_id, EndpointId="py-ep-1", EndpointRequest={
        "ChannelType": "APNS", "Address": "f" * 64, "User": {"UserId": "py-user"}})
    results["updateEndpoint"] = {"status": up["ResponseMetadata"]["HTTPStatusCode"], "body": up["MessageBody"]}
    ep = pp.get_endpoint(ApplicationId=app_id, EndpointId="py-ep-1")
    results["getEndpoint"] = ep["EndpointResponse"]

    results["step"] = "get_apps"
    results["getApps"] = [a["Id"] for a in pp.get_apps(PageSize="1000")["ApplicationsResponse"]["Item"]]

    results["step"] = "errors"
    errors = {}
    try:
        pp.get_app(ApplicationId="f" * 32)
    except ClientError as e:
        errors["getMissingApp"] = err(e)
    try:
        pp.get_campaigns(ApplicationId=app_id)
    except ClientError as e:
        errors["getCampaigns"] = err(e)
    try:
        pp.update_gcm_channel(ApplicationId=app_id, GCMChannelRequest={"ApiKey": "legacy"})
    except ClientError as e:
        errors["legacyApiKey"] = err(e)
    results["errors"] = errors

    results["step"] = "delete_app"
    results["deleteApp"] = pp.delete_app(ApplicationId=app_id)["ApplicationResponse"]["Id"]
    results["step"] = "done"
    results["ok"] = True


try:
    main()
except ClientError as e:
    results["error"] = str(e)
    results["clientError"] = err(e)
except Exception as e:
    results["error"] = repr(e)
    results["traceback"] = traceback.format_exc()
emit()
sys.exit(0 if results["ok"] else 1)
