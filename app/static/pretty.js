// Pretty-printing markup as text: one tag a line, indented by nesting. Only ever shown through
// textContent; the markup is read with a small tokenizer, never parsed into a live document.

const VOID = new Set(["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"]);
const RAW = new Set(["script", "style", "pre", "textarea"]);
const MAX_PRETTY = 2 * 1024 * 1024; // beyond this the source is shown as it came
const TOKEN = /<!--[\s\S]*?-->|<!\[CDATA\[[\s\S]*?\]\]>|<[!?][^>]*>|<\/?[A-Za-z][^>]*>|[^<]+|</g;

/** `source` re-indented, or null when it is too big or not worth it. */
export function prettyMarkup(source, { html = false } = {}) {
  if (source.length > MAX_PRETTY) return null;
  const lines = [];
  let depth = 0;
  const pad = () => "  ".repeat(depth);
  const tokens = new RegExp(TOKEN.source, "g");
  let match;
  while ((match = tokens.exec(source)) !== null) {
    const token = match[0];
    if (token.startsWith("</")) {
      depth = Math.max(0, depth - 1);
      lines.push(pad() + token);
    } else if (token.startsWith("<!") || token.startsWith("<?")) {
      lines.push(pad() + token);
    } else if (token.startsWith("<") && token.length > 1) {
      const name = /^<([A-Za-z][\w:.-]*)/.exec(token)[1].toLowerCase();
      lines.push(pad() + token);
      const selfClosing = token.endsWith("/>") || (html && VOID.has(name));
      if (!selfClosing) depth += 1;
      if (html && RAW.has(name) && !selfClosing) {
        // <script>, <style>, <pre>: their content is copied as is, up to the end tag.
        const end = source.toLowerCase().indexOf(`</${name}`, tokens.lastIndex);
        const stop = end < 0 ? source.length : end;
        const content = source.slice(tokens.lastIndex, stop).replace(/^\n+|\s+$/g, "");
        if (content) lines.push(content);
        tokens.lastIndex = stop;
      }
    } else {
      const words = token.trim();
      if (words) lines.push(pad() + words);
    }
  }
  return collapse(lines.filter((line) => line.trim() !== "")).join("\n");
}

/** `<h1>`, `text`, `</h1>` on three lines become one: short elements read as they were written. */
function collapse(lines) {
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)<([A-Za-z][\w:.-]*)[^>]*>$/.exec(lines[i]);
    const close = open && lines[i + 2]?.trim().toLowerCase() === `</${open[2].toLowerCase()}>`;
    if (close && !lines[i + 1].trim().startsWith("<") && lines[i + 1].length < 200) {
      out.push(lines[i] + lines[i + 1].trim() + lines[i + 2].trim());
      i += 2;
    } else {
      out.push(lines[i]);
    }
  }
  return out;
}
