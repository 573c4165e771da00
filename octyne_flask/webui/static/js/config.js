// The config page: the raw HuJSON file in an editor, saved with PATCH /config
// (a 400 shows the daemon's `error` and `detail`), and reload from disk.

import { ApiError, getJson, getText, sendText } from "./api.js";
import { confirmDialog } from "./dialogs.js";
import { h, replaceChildren, toast } from "./dom.js";

export function mountConfig(section) {
  const area = h("textarea", {
    id: "config-text", class: "config-text", spellcheck: "false", autocomplete: "off", wrap: "off",
    "aria-label": "config.json (HuJSON: comments and trailing commas allowed)", disabled: true,
  });
  const state = h("span", { class: "editor-state", role: "status" });
  const problem = h("div", { class: "form-error config-error", role: "alert", hidden: true });
  const save = h("button", { type: "button", class: "primary", text: "Save and apply", disabled: true });
  const revert = h("button", { type: "button", class: "secondary", text: "Revert", disabled: true });
  const reloadButton = h("button", { type: "button", class: "secondary", text: "Reload from disk" });
  section.append(
    h("div", { class: "view-header" }, h("h1", { text: "Config" }), state),
    h("p", { class: "hint", text: "Saving checks the config, writes config.json and applies it like a reload. Reload re-reads the file from disk (after editing it outside the dashboard)." }),
    problem, area,
    h("div", { class: "toolbar" }, save, revert, reloadButton));
  let saved = "";
  let active = true;

  const showProblem = (failure) => {
    problem.hidden = false;
    replaceChildren(problem, h("strong", { text: failure.message }),
      failure.body.detail ? h("p", { class: "detail", text: String(failure.body.detail) }) : null);
  };
  const markDirty = () => {
    const dirty = area.value !== saved;
    state.textContent = dirty ? "Unsaved changes" : "";
    revert.disabled = !dirty;
  };

  async function load() {
    let text;
    try {
      text = await getText("/config");
    } catch {
      return;
    }
    if (!active) return;
    saved = text;
    area.value = text;
    area.disabled = false;
    save.disabled = false;
    markDirty();
  }

  async function doSave() {
    problem.hidden = true;
    save.disabled = true;
    state.textContent = "Saving…";
    try {
      await sendText("PATCH", "/config", area.value);
      saved = area.value;
      markDirty();
      toast("Config saved and applied.");
    } catch (failure) {
      state.textContent = "Not saved";
      if (failure instanceof ApiError) showProblem(failure);
    } finally {
      save.disabled = false;
    }
  }

  save.addEventListener("click", doSave);
  area.addEventListener("input", markDirty);
  area.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "s") {
      event.preventDefault();
      doSave();
    }
  });
  revert.addEventListener("click", () => {
    area.value = saved;
    problem.hidden = true;
    markDirty();
  });
  reloadButton.addEventListener("click", async () => {
    if (area.value !== saved && !(await confirmDialog({
      title: "Reload from disk?", message: "Your unsaved changes in the editor will be replaced by the file on disk.", confirmLabel: "Reload",
    }))) return;
    problem.hidden = true;
    try {
      await getJson("/config/reload");
      toast("Config reloaded from disk.");
      await load();
    } catch (failure) {
      if (failure instanceof ApiError) showProblem(failure);
    }
  });

  load();
  return () => {
    active = false;
  };
}
