/**
 * The console's composition root: settings from the address bar, the session, the clients over the chosen
 * transport, and which view is on screen (sign-in, or the users page once signed in).
 */
import { type Api, createApi } from "./api.ts";
import { openMySessions } from "./credentials-view.ts";
import { h, replace } from "./dom.ts";
import { headerView } from "./header-view.ts";
import { loginView } from "./login-view.ts";
import { createSession } from "./session.ts";
import { readSettings, type Settings, settingsUrl } from "./settings.ts";
import { usersView, type View } from "./users-view.ts";
import { openWebhooks } from "./webhooks-view.ts";

/** Mounts the console into `root`. */
export function startConsole(root: HTMLElement): void {
  let settings = readSettings(new URL(location.href));
  let api: Api;
  const session = createSession(() => api);
  const connect = () => {
    api = createApi(settings, session.accessToken, [session.retryInterceptor]);
  };
  let view: View | undefined;

  const changeSettings = (next: Settings) => {
    settings = next;
    history.replaceState(null, "", settingsUrl(new URL(location.href), settings));
    connect();
    show();
  };

  function show() {
    view?.destroy();
    const state = session.state;
    if (state.kind === "signed-out") {
      view = undefined;
      replace(root, loginView({ settings, notice: state.notice, login: session.login, changeSettings }));
      return;
    }
    view = usersView({
      api: () => api,
      apiBaseUrl: settings.apiBaseUrl,
      accessToken: session.accessToken,
      refresh: session.refresh,
    });
    const header = headerView({
      user: state.user,
      settings,
      changeSettings,
      logout: () => void session.logout(),
      mySessions: () => openMySessions({ api: () => api, apiBaseUrl: settings.apiBaseUrl }),
      webhooks: () => openWebhooks({ api: () => api, apiBaseUrl: settings.apiBaseUrl }),
    });
    replace(root, h("div", { class: "shell", "data-transport": settings.transport }, header, view.element));
  }

  connect();
  session.subscribe(show);
  show();
}
