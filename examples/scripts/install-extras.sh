#!/bin/bash
# Example setup script: runs once in the template VM, as the guest user, with sudo available.
set -euo pipefail
sudo apt-get install -y -qq jq ripgrep
