// Signing in and out: the sign-in form, who is signed in (tenant, scopes, Sign out) in the top
// bar, and the warning that a server runs without authentication. The console itself starts
// and stops through the two callbacks; the key lives in bus.js.

const RETRY_MS = 2000; // the server did not answer whether the key is good: ask again

const $ = (sel) => document.querySelector(sel);

/**
 * Signs in with the key this tab holds (or asks for one), then calls `onSignedIn(identity)`;
 * whenever the session ends (Sign out, a 401, the socket closed with 4401) calls
 * `onSignedOut()` and asks for a key again, with the server's reason.
 * @param {import('./bus.js').Session} client
 * @param {{onSignedIn: (identity: object) => void, onSignedOut: () => void}} callbacks
 */
export function startSession(client, { onSignedIn, onSignedOut }) {
  const form = $('#signin-form');
  const input = $('#api-key');
  const button = $('#signin-submit');
  let signedIn = false; // the console runs: a late answer to the stored key must not restart it

  function showSignIn(reason) {
    $('#console').hidden = true;
    $('#identity').hidden = true;
    $('#conn').hidden = true;
    $('#open-banner').hidden = true;
    $('#signin').hidden = false;
    setStatus('');
    setError(reason);
    input.value = '';
    input.focus();
  }

  function setError(message) {
    const el = $('#signin-error');
    el.textContent = message || '';
    el.hidden = !message;
    if (message) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
  }

  function setStatus(message) {
    $('#signin-status').textContent = message;
  }

  function showConsole(identity) {
    if (signedIn) return;
    signedIn = true;
    $('#signin').hidden = true;
    input.value = ''; // the key stays in sessionStorage only, not in the page
    setError('');
    const open = identity.kind === 'open';
    $('#open-banner').hidden = !open;
    $('#who-tenant').textContent = identity.tenant;
    $('#who-kind').textContent = open ? 'no authentication' : identity.kind;
    $('#who-scopes').replaceChildren(...(identity.scopes || []).map((scope) => {
      const li = document.createElement('li');
      li.textContent = scope;
      return li;
    }));
    $('#sign-out').hidden = open; // nothing to sign out of
    $('#identity').hidden = false;
    $('#conn').hidden = false;
    $('#console').hidden = false;
    onSignedIn(identity);
  }

  async function onSubmit(event) {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) { setError('Paste an API key.'); input.focus(); return; }
    button.disabled = true;
    setStatus('Checking the key…');
    try {
      showConsole(await client.signIn(key));
    } catch (err) {
      setStatus('');
      setError(err.status === 401 ? `The server refused this key: ${err.message}` : err.message);
      input.select();
    } finally {
      button.disabled = false;
    }
  }

  /** The key stored in this tab, if any; a server without authentication needs none. */
  async function resume() {
    while (!signedIn) {
      try {
        const answer = await client.resume();
        if (signedIn) return; // signed in with the form meanwhile
        if (client.signedIn) showConsole(answer); else showSignIn(answer.reason);
        return;
      } catch (err) {
        $('#signin').hidden = false;
        setStatus(`Could not check the stored key: ${err.message} Trying again…`);
        await new Promise((resolve) => { setTimeout(resolve, RETRY_MS); });
      }
    }
  }

  form.addEventListener('submit', onSubmit);
  $('#sign-out').addEventListener('click', () => client.signOut(''));
  client.onSignedOut((reason) => {
    signedIn = false;
    onSignedOut();
    showSignIn(reason ? `Signed out: ${reason}` : '');
  });
  resume();
}
