// A tiny markdown renderer for streamed text: safe (HTML is escaped first), forgiving of
// half-finished input (an unclosed ``` fence renders as code to the end; an unclosed
// **bold** stays literal until its closing marks arrive). Headings, paragraphs, lists,
// fenced and inline code, bold, italic, links (http/https only), horizontal rules.
(function (global) {
  "use strict";

  function escapeHtml(text) {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }

  function inline(text) {
    const codes = [];
    let out = escapeHtml(text).replace(/`([^`\n]+)`/g, function (_, code) {
      codes.push("<code>" + code + "</code>");
      return "\u0000" + (codes.length - 1) + "\u0000";
    });
    out = out
      .replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[^*])\*([^*\n]+)\*(?!\*)/g, "$1<em>$2</em>")
      .replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/g, '<a href="$2" rel="noopener noreferrer">$1</a>');
    return out.replace(/\u0000(\d+)\u0000/g, function (_, i) { return codes[Number(i)]; });
  }

  function render(source) {
    const lines = source.replace(/\r\n?/g, "\n").split("\n");
    const html = [];
    let paragraph = [];
    let list = null; // "ul" | "ol"
    let fence = null; // lines of an open code block

    function flushParagraph() {
      if (paragraph.length) html.push("<p>" + inline(paragraph.join("\n")).replace(/\n/g, "<br>") + "</p>");
      paragraph = [];
    }
    function closeList() {
      if (list) html.push("</" + list + ">");
      list = null;
    }

    for (const line of lines) {
      if (fence !== null) {
        if (/^\s*```/.test(line)) {
          html.push("<pre><code>" + escapeHtml(fence.join("\n")) + "</code></pre>");
          fence = null;
        } else {
          fence.push(line);
        }
        continue;
      }
      let m;
      if (/^\s*```/.test(line)) {
        flushParagraph(); closeList();
        fence = [];
      } else if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
        flushParagraph(); closeList();
        html.push("<h" + m[1].length + ">" + inline(m[2]) + "</h" + m[1].length + ">");
      } else if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
        flushParagraph(); closeList();
        html.push("<hr>");
      } else if ((m = /^\s*[-*+]\s+(.*)$/.exec(line)) || (m = /^\s*\d+[.)]\s+(.*)$/.exec(line))) {
        flushParagraph();
        const kind = /^\s*\d/.test(line) ? "ol" : "ul";
        if (list !== kind) { closeList(); html.push("<" + kind + ">"); list = kind; }
        html.push("<li>" + inline(m[1]) + "</li>");
      } else if (!line.trim()) {
        flushParagraph(); closeList();
      } else {
        closeList();
        paragraph.push(line);
      }
    }
    if (fence !== null) html.push('<pre class="streaming"><code>' + escapeHtml(fence.join("\n")) + "</code></pre>");
    flushParagraph(); closeList();
    return html.join("\n");
  }

  global.renderMarkdown = render;
})(typeof window !== "undefined" ? window : globalThis);
