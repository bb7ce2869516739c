"""Signs a user up on a chat server and prints the bearer access token.

Usage: signup.py BASE_URL USERNAME (the standard library only, so it runs in any
Python; the fuzz script runs it in schemathesis's virtual environment).
"""

import json
import sys
import urllib.request


def main() -> None:
    base, username = sys.argv[1], sys.argv[2]
    body = json.dumps({"username": username, "password": "fuzz-password-1"}).encode()
    request = urllib.request.Request(
        f"{base}/api/v1/auth/signup",
        data=body,
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        print(json.load(response)["access_token"])


if __name__ == "__main__":
    main()
