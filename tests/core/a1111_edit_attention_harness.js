// Runs A1111's javascript/edit-attention.js (from an A1111 checkout; not part of this repository)
// on prompt boxes described as JSON lines on stdin: {"text", "start", "end", "key"} with positions
// in UTF-16 units; prints one JSON line per case: {"text", "start", "end"} after the key press.
// Usage: node a1111_edit_attention_harness.js /path/to/stable-diffusion-webui/javascript/edit-attention.js
"use strict";
const fs = require("fs");
const vm = require("vm");

const listeners = [];
const sandbox = {
    opts: {
        keyedit_precision_attention: 0.1,
        keyedit_precision_extra: 0.05,
        keyedit_delimiters: ".,\\/!?%^*;:{}=`~() ",
        keyedit_delimiters_whitespace: ["Tab", "Carriage Return", "Line Feed"],
    },
    addEventListener: (kind, listener) => listeners.push([kind, listener]),
    updateInput: () => {},
};
vm.createContext(sandbox);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), sandbox);
const keydown = listeners.filter(([kind]) => kind === "keydown").map(([, listener]) => listener);

function press(box) {
    const target = {
        value: box.text,
        selectionStart: box.start,
        selectionEnd: box.end,
        matches: () => true,
        focus: () => {},
        setSelectionRange(start, end) {
            this.selectionStart = start;
            this.selectionEnd = end;
        },
    };
    const event = {
        key: box.key,
        ctrlKey: true,
        metaKey: false,
        originalTarget: target,
        composedPath: () => [target],
        preventDefault: () => {},
    };
    keydown.forEach((listener) => listener(event));
    return {text: target.value, start: target.selectionStart, end: target.selectionEnd};
}

const lines = fs.readFileSync(0, "utf8").split("\n").filter((line) => line.length > 0);
process.stdout.write(lines.map((line) => JSON.stringify(press(JSON.parse(line)))).join("\n") + "\n");
