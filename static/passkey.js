// Latchkey's only script: passkeys. Without it (or without WebAuthn) the
// pages still work; the passkey buttons stay hidden.
"use strict";

(function () {
	if (!window.PublicKeyCredential || !navigator.credentials) {
		return;
	}
	for (const el of document.querySelectorAll("[data-requires-webauthn]")) {
		el.hidden = false;
	}
})();
