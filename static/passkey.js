// Latchkey's only script: passkeys. Without it (or without WebAuthn) every
// page still works and the passkey buttons stay hidden; the email link is
// always there.
"use strict";

(() => {
	if (!window.PublicKeyCredential || !navigator.credentials) {
		return;
	}
	for (const el of document.querySelectorAll("[data-requires-webauthn]")) {
		el.hidden = false;
	}

	// --- base64url and the JSON forms of WebAuthn objects -----------------

	const b64u = {
		encode(buf) {
			const bytes = new Uint8Array(buf);
			let s = "";
			for (const b of bytes) s += String.fromCharCode(b);
			return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
		},
		decode(str) {
			const s = str.replace(/-/g, "+").replace(/_/g, "/");
			const bin = atob(s + "===".slice((s.length + 3) % 4));
			const out = new Uint8Array(bin.length);
			for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
			return out.buffer;
		},
	};

	// Browsers that lack parse*FromJSON get the same conversion by hand.
	function creationOptions(json) {
		if (PublicKeyCredential.parseCreationOptionsFromJSON) {
			return PublicKeyCredential.parseCreationOptionsFromJSON(json);
		}
		return {
			...json,
			challenge: b64u.decode(json.challenge),
			user: { ...json.user, id: b64u.decode(json.user.id) },
			excludeCredentials: (json.excludeCredentials || []).map((c) => ({ ...c, id: b64u.decode(c.id) })),
		};
	}

	function requestOptions(json) {
		if (PublicKeyCredential.parseRequestOptionsFromJSON) {
			return PublicKeyCredential.parseRequestOptionsFromJSON(json);
		}
		return {
			...json,
			challenge: b64u.decode(json.challenge),
			allowCredentials: (json.allowCredentials || []).map((c) => ({ ...c, id: b64u.decode(c.id) })),
		};
	}

	function credentialJSON(cred) {
		if (typeof cred.toJSON === "function") {
			try {
				return cred.toJSON();
			} catch (_) {
				// fall through to the manual form
			}
		}
		const r = cred.response;
		const json = {
			id: cred.id,
			rawId: b64u.encode(cred.rawId),
			type: cred.type,
			clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
			response: { clientDataJSON: b64u.encode(r.clientDataJSON) },
		};
		if (cred.authenticatorAttachment) json.authenticatorAttachment = cred.authenticatorAttachment;
		if (r.attestationObject) {
			json.response.attestationObject = b64u.encode(r.attestationObject);
			json.response.transports = r.getTransports ? r.getTransports() : [];
		} else {
			json.response.authenticatorData = b64u.encode(r.authenticatorData);
			json.response.signature = b64u.encode(r.signature);
			if (r.userHandle) json.response.userHandle = b64u.encode(r.userHandle);
		}
		return json;
	}

	// --- talking to the server and to the person --------------------------

	async function post(url, body, signal) {
		const res = await fetch(url, {
			method: "POST",
			headers: { "Content-Type": "application/json", Accept: "application/json" },
			body: JSON.stringify(body || {}),
			credentials: "same-origin",
			signal,
		});
		let data = {};
		try {
			data = await res.json();
		} catch (_) {
			// not JSON: handled by the caller through res.ok
		}
		return { ok: res.ok, status: res.status, data };
	}

	const status = document.getElementById("passkey-status");
	function say(message) {
		if (!status) return;
		status.textContent = message;
		status.hidden = !message;
	}

	// explain turns a WebAuthn exception into a calm sentence.
	function explain(err, action) {
		// The messages come with the page, in the person's language.
		const msg = (name) => document.getElementById("script-messages")?.dataset[name] || "";
		switch (err && err.name) {
			case "AbortError":
				return "";
			case "NotAllowedError":
				return action === "signin" ? msg("msgCancelledSignin") : msg("msgCancelled");
			case "InvalidStateError":
				return msg("msgAlready");
			case "SecurityError":
				return msg("msgSecurity");
			case "NotSupportedError":
				return msg("msgUnsupported");
			case "TypeError":
				return msg("msgNetwork");
		}
		return msg("msgFailed");
	}

	// failure shows what the server said, follows its redirect when it asks
	// for a step-up or a sign-in, and tells the browser to forget a passkey
	// the server no longer knows.
	async function failure(res) {
		const d = res.data || {};
		if (d.redirect && (d.error === "reauth_required" || res.status === 401)) {
			location.assign(d.redirect);
			return;
		}
		if (d.credential && PublicKeyCredential.signalUnknownCredential) {
			try {
				await PublicKeyCredential.signalUnknownCredential({ rpId: location.hostname, credentialId: d.credential });
			} catch (_) {
				// best effort
			}
		}
		say(d.message || document.getElementById("script-messages")?.dataset.msgError || "");
	}

	// assert runs one assertion ceremony: begin, get, finish, go.
	async function assert(beginURL, mediation, signal) {
		const begin = await post(beginURL, {}, signal);
		if (!begin.ok) return failure(begin);
		const options = { publicKey: requestOptions(begin.data.publicKey) };
		if (mediation) options.mediation = mediation;
		if (signal) options.signal = signal;
		const cred = await navigator.credentials.get(options);
		if (!cred) return;
		const finish = await post("/signin/passkey/finish", credentialJSON(cred));
		if (!finish.ok) return failure(finish);
		location.assign(finish.data.redirect);
	}

	function busy(button, on) {
		button.disabled = on;
		button.setAttribute("aria-busy", on ? "true" : "false");
	}

	// --- sign-in page: autofill on load, and the button --------------------

	const signIn = document.getElementById("passkey-signin");
	if (signIn) {
		const next = signIn.dataset.next || "";
		const nextParam = next ? "next=" + encodeURIComponent(next) : "";
		let conditional = null;
		let conditionalStarted = Promise.resolve();

		const stopConditional = () => {
			if (conditional) {
				conditional.abort();
				conditional = null;
			}
		};

		if (PublicKeyCredential.isConditionalMediationAvailable) {
			conditionalStarted = PublicKeyCredential.isConditionalMediationAvailable().then((available) => {
				if (!available) return;
				conditional = new AbortController();
				const run = assert("/signin/passkey/begin?mediation=conditional" + (nextParam ? "&" + nextParam : ""), "conditional", conditional.signal);
				run.catch((err) => {
					// Autofill is quiet: only a real failure is worth a word.
					if (err.name !== "AbortError" && err.name !== "NotAllowedError") say(explain(err, "signin"));
				});
			}, () => {});
		}

		signIn.addEventListener("click", async () => {
			stopConditional();
			say("");
			busy(signIn, true);
			try {
				await conditionalStarted;
				await assert("/signin/passkey/begin" + (nextParam ? "?" + nextParam : ""), "", null);
			} catch (err) {
				say(explain(err, "signin"));
			} finally {
				busy(signIn, false);
			}
		});
		const form = document.querySelector('form[action="/signin/email"]');
		if (form) form.addEventListener("submit", stopConditional);
	}

	// --- account page: add a passkey --------------------------------------

	for (const button of document.querySelectorAll("[data-passkey-register]")) {
		button.addEventListener("click", async () => {
			say("");
			busy(button, true);
			try {
				const begin = await post("/account/passkeys/begin");
				if (!begin.ok) return failure(begin);
				const cred = await navigator.credentials.create({ publicKey: creationOptions(begin.data.publicKey) });
				if (!cred) return;
				const finish = await post("/account/passkeys/finish", credentialJSON(cred));
				if (!finish.ok) return failure(finish);
				location.assign(finish.data.redirect);
			} catch (err) {
				say(explain(err, "register"));
			} finally {
				busy(button, false);
			}
		});
	}

	// --- account page: keep password managers in step (Signal API) --------

	// The page lists the account's passkeys and address (#passkey-signals):
	// tell the browser, on every load (so after a deletion, which reloads
	// it, and after an address change), so that its password manager
	// forgets passkeys deleted here and shows the current address. Only
	// where the browser has the calls; never an error where it has not.
	const signals = document.getElementById("passkey-signals");
	if (signals && signals.dataset.userId) {
		const d = signals.dataset;
		const rpId = d.rpId || location.hostname;
		const signal = async (name, options) => {
			if (typeof PublicKeyCredential[name] !== "function") return;
			try {
				await PublicKeyCredential[name](options);
			} catch (_) {
				// best effort: nothing the person can do about it
			}
		};
		signal("signalAllAcceptedCredentials", {
			rpId,
			userId: d.userId,
			allAcceptedCredentialIds: (d.credentialIds || "").split(" ").filter(Boolean),
		});
		signal("signalCurrentUserDetails", { rpId, userId: d.userId, name: d.name, displayName: d.name });
	}

	// --- step-up page ------------------------------------------------------

	for (const button of document.querySelectorAll("[data-passkey-reauth]")) {
		button.addEventListener("click", async () => {
			say("");
			busy(button, true);
			try {
				const next = button.dataset.next || "/account";
				await assert("/signin/passkey/begin?for=reauth&next=" + encodeURIComponent(next), "", null);
			} catch (err) {
				say(explain(err, "reauth"));
			} finally {
				busy(button, false);
			}
		});
	}
})();
