// A small helper to build DOM nodes. Text always goes in as text, never as
// HTML, so nothing a user writes can become markup.

export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node, ...children) {
  node.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

export function initials(name) {
  const letters = name.replace(/^[@#!]/, "").trim();
  return (letters[0] || "?").toUpperCase();
}

export function time(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function day(ts) {
  return new Date(ts).toLocaleDateString([], { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

// A modal dialog with a title and a form; resolves when it closes.
export function dialog(title, build) {
  const box = h("dialog", { class: "dialog", "aria-labelledby": "dialog-title" });
  const close = () => box.close();
  box.append(h("h2", { id: "dialog-title", text: title }), build(close),
             h("button", { type: "button", class: "link", text: "Close", onclick: close }));
  box.addEventListener("close", () => box.remove());
  document.body.append(box);
  box.showModal();
  return box;
}
