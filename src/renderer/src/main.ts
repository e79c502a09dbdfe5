import { mount } from 'svelte';
import './lib/theme.css';
import App from './App.svelte';
import AnnotatorPage from './AnnotatorPage.svelte';
import { annotatorToken } from './lib/client';

const target = document.getElementById('app');
if (!target) throw new Error('missing #app');
// an annotator link (/?a=…) opens the study's pairs and nothing else
export default annotatorToken ? mount(AnnotatorPage, { target }) : mount(App, { target });
