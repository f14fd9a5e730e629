#!/usr/bin/env bash
# Wrap "dist/Rusty Cat.app" (from `python packaging/build.py bundle` on a Mac) in
# dist/Rusty_Cat-<version>-macos-<arch>.dmg, with an /Applications link to drag the app onto.
#
# Optional environment:
#   MACOS_SIGN_IDENTITY   codesign identity ("Developer ID Application: ..."; "-" signs ad hoc). Unset: the app
#                         keeps PyInstaller's ad-hoc signature and Gatekeeper asks users to allow it once.
#   APPLE_API_KEY_PATH, APPLE_API_KEY_ID, APPLE_API_ISSUER
#                         App Store Connect API key: notarize the signed .dmg with notarytool and staple it.
#   PYTHON                interpreter for build.py (default python3)
# Uses only tools every macOS has (codesign, hdiutil, xcrun), so it runs on a stock GitHub runner.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

PY="${PYTHON:-python3}"
VERSION="$("$PY" packaging/build.py version)"
ARCH="$(uname -m)"  # arm64 or x86_64: one .dmg per architecture
APP="dist/Rusty Cat.app"
DMG="dist/Rusty_Cat-${VERSION}-macos-${ARCH}.dmg"
IDENTITY="${MACOS_SIGN_IDENTITY:-}"

[ -d "$APP" ] || { echo "error: $APP not found; run: $PY packaging/build.py bundle" >&2; exit 1; }

if [ "$IDENTITY" = "-" ]; then
    codesign --force --deep --sign - "$APP"
elif [ -n "$IDENTITY" ]; then
    # Hardened runtime + secure timestamp: what notarization requires.
    codesign --force --deep --options runtime --timestamp \
        --entitlements packaging/macos/entitlements.plist --sign "$IDENTITY" "$APP"
    codesign --verify --deep --strict --verbose=2 "$APP"
else
    echo "note: MACOS_SIGN_IDENTITY is not set; the app keeps its ad-hoc signature"
fi

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
rm -f "$DMG"
hdiutil create -volname "Rusty Cat" -srcfolder "$STAGE" -fs HFS+ -format UDZO -imagekey zlib-level=9 -ov "$DMG"

if [ -n "$IDENTITY" ] && [ "$IDENTITY" != "-" ]; then
    codesign --force --timestamp --sign "$IDENTITY" "$DMG"
    if [ -n "${APPLE_API_KEY_PATH:-}" ] && [ -n "${APPLE_API_KEY_ID:-}" ] && [ -n "${APPLE_API_ISSUER:-}" ]; then
        xcrun notarytool submit "$DMG" --key "$APPLE_API_KEY_PATH" --key-id "$APPLE_API_KEY_ID" \
            --issuer "$APPLE_API_ISSUER" --wait
        xcrun stapler staple "$DMG"
    fi
fi
echo "dmg: $DMG ($(du -h "$DMG" | cut -f1))"
